"""Run configuration of the validation benchmarks (shown in the launchpad).

Every field has a default, so "Materialize" runs the ``quick`` preset as is.
Override fields left at ``None`` / empty take the preset's value; any override
changes the protocol key, so its runs are averaged separately in the store.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field


class BenchmarkConfig(dg.Config):
    """One materialization adds ``new_seeds`` run seeds of a preset to the results store."""

    preset: str = Field(
        default="quick",
        description="'quick' (every strategy, tiny budget, a minute or two on a CPU), 'cpu' (the paper's "
        "protocol scaled down 10x, MNIST about 5-10 CPU-minutes per seed), 'paper-cpu' (the paper's pool, batch and "
        "candidate pools, one training a round, T=10, half width; MNIST about 40 CPU-minutes per seed), "
        "'paper' (full scale; use device=cuda)",
    )
    new_seeds: int = Field(default=0, description="run seeds to add this time; 0 = the preset's number (3, quick: 1)")
    base_seed: int = Field(default=0, description="seeds are handed out from here upwards, skipping stored ones")
    strategies: list[str] = Field(
        default_factory=list,
        description="strategies to run, e.g. random, entropy, variation_ratios, bald, ceal_entropy_2500; "
        "empty = the preset's list",
    )
    initial_fraction: Optional[float] = Field(
        default=None, description="class-balanced initial pool as a fraction of the unlabeled pool (paper: "
        "MNIST 0.01 / 0.05, CIFAR-10 0.01 / 0.25)")
    rounds: Optional[int] = Field(default=None, description="acquisition rounds (paper: 10)")
    acquire_per_round: Optional[int] = Field(default=None, description="images labeled per round")
    trainings_per_round: Optional[int] = Field(default=None, description="models trained per round, accuracy averaged")
    mc_samples: Optional[int] = Field(default=None, description="MC-Dropout forward passes T")
    temperature: Optional[float] = Field(default=None, description="candidate-pool softmax temperature (rank-normalised)")
    pool_size: Optional[int] = Field(default=None, description="train images used as the unlabeled pool")
    epochs: Optional[int] = Field(default=None, description="maximum training epochs (early stopping on a held-out set)")
    threads: int = Field(default=0, description="torch CPU threads; 0 = torch's default")
    device: str = Field(default="cpu", description="torch device to train and score on: cpu, cuda, cuda:1")
    data_root: str = Field(default="", description="dataset folder; empty = $CEAL_DATASETS, ../shared/datasets, "
                           "~/.ceal/datasets")
    download: bool = Field(default=False, description="download the dataset when it is not found (needs a network)")

    def overrides(self) -> dict:
        """The protocol fields this config sets (None = keep the preset's)."""
        names = ("initial_fraction", "rounds", "acquire_per_round", "trainings_per_round", "mc_samples",
                 "temperature", "pool_size", "epochs")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}
