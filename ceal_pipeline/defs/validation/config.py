"""Run configuration of the validation benchmarks (shown in the launchpad).

Every field has a default, so "Materialize" runs the ``quick`` preset as is.
Override fields left at ``None`` / empty take the preset's value; any override
changes the protocol key, so its runs are averaged separately in the store.
"""

from __future__ import annotations

from typing import Literal, Optional

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
    new_seeds: int = Field(default=0, description="run seeds to add this time; 0 = the preset's number (5, quick: 2)")
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


class DetectionBenchmarkConfig(dg.Config):
    """One materialization of ``detection_benchmark`` adds ``new_seeds`` run seeds of a preset."""

    preset: Literal["quick", "cpu", "gpu"] = Field(
        default="quick",
        description="'quick' (every strategy on 240 synthetic frames, 2 seeds, minutes on a CPU; plumbing), 'cpu' "
        "(1,000 frames, 6 rounds of 20, 5 paired seeds, about 70 minutes on 2 cores), 'gpu' (the cpu protocol at 10x "
        "the scale; use device=cuda)",
    )
    new_seeds: int = Field(default=0, description="run seeds to add this time; 0 = the preset's number (5, quick: 2)")
    base_seed: int = Field(default=0, description="seeds are handed out from here upwards, skipping stored ones")
    strategies: list[str] = Field(
        default_factory=list,
        description="strategies, e.g. random, heatmap_entropy, ceal_heatmap_entropy_5pct, "
        "ceal_heatmap_entropy_5pct_balanced_diverse_pruned, ceal_heatmap_entropy_5pct_balanced_diverse_budget; "
        "empty = the preset's list",
    )
    frames: Optional[int] = Field(default=None, description="synthetic frames generated (~80% pool, ~20% held out)")
    held_out_frames: Optional[int] = Field(default=None, description="held-out frames (one per generated "
                                           "sequence) for mAP and the score-error correlation")
    initial_labeled: Optional[int] = Field(default=None, description="seed set drawn from the pool")
    rounds: Optional[int] = Field(default=None, description="acquisition rounds")
    acquire_per_round: Optional[int] = Field(default=None, description="frames bought per round")
    epochs: Optional[int] = Field(default=None, description="round-0 training epochs")
    fine_tune_epochs: Optional[int] = Field(default=None, description="warm-started epochs of later rounds")
    fine_tune_steps: Optional[int] = Field(default=None, description="warm-started optimiser steps of later rounds")
    exact_steps: Optional[bool] = Field(default=None, description="train exactly fine_tune_steps steps (the last "
                                        "epoch partial) instead of rounding up to whole epochs")
    new_frame_repeats: Optional[int] = Field(default=None, description="warm-started rounds: passes per epoch over "
                                             "each frame bought in the round (oversampling; 1 = once)")
    generator_seed: Optional[int] = Field(default=None, description="the synthetic dataset's seed (another dataset)")
    mc_samples: Optional[int] = Field(default=None, description="MC-Dropout passes T per scored frame")
    threads: int = Field(default=0, description="torch CPU threads; 0 = torch's default")
    device: str = Field(default="cpu", description="torch device to train and score on: cpu, cuda, cuda:1, auto")
    num_workers: int = Field(default=-1, description="frame-loader processes; -1 = the loader's default, 0 = in-process")

    def overrides(self) -> dict:
        """The protocol fields this config sets (None = keep the preset's)."""
        names = ("frames", "held_out_frames", "initial_labeled", "rounds", "acquire_per_round", "epochs",
                 "fine_tune_epochs", "fine_tune_steps", "exact_steps", "new_frame_repeats", "generator_seed",
                 "mc_samples")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}
