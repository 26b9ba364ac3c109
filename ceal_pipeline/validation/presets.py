"""Named benchmark presets: the paper's protocol and cheaper ones for a CPU.

- ``paper``: the protocol of the paper at full scale (60k MNIST / 50k CIFAR-10
  pool, 10 rounds, 3 trainings a round, candidate pools of 2,500 / 5,000 /
  10,000). Hours on a GPU; days on a CPU.
- ``paper-cpu``: the paper's pool, batch per round, rounds and candidate pools
  (MNIST: 60k pool less 1,000 held out, 600 a round, 2,500 / 5,000 / 10,000),
  with the cost of each run cut to fit a 2-core CPU: one training a round
  instead of three, T = 10 MC passes instead of 20, a half-width network, at
  most 10 epochs (batch 64) with early stopping at patience 2. MNIST: about 40
  CPU-minutes per seed and initial pool for the nine paper strategies; CIFAR-10
  at this scale still wants a GPU.
- ``cpu``: the same protocol shrunk to fit a shared 2-core CPU (MNIST: about
  5-10 CPU-minutes per seed and initial pool): a random subset of the train split
  as the unlabeled pool and every count (initial pool, batch per round,
  candidate pools) scaled by the same factor, so the *ratios* of the paper are
  kept (10 rounds acquiring 10% of the pool; candidate pools of 1/24, 1/12 and
  1/6 of it), one training a round, a half-width network, T = 10.
- ``quick``: every strategy on a tiny budget in a minute or two on a CPU; what
  CI and a first click in the Dagster UI run. Checks plumbing, not the claim.

Any field can be overridden (``get_preset(..., overrides={...})``); the
overridden protocol gets its own key in the results store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ceal_pipeline.configuration.presets import amend_preset, choose_preset
from ceal_pipeline.validation.protocol import ProtocolConfig
from ceal_pipeline.validation.strategies import paper_strategies

PRESET_NAMES = ("quick", "cpu", "paper-cpu", "paper")
DATASETS = ("mnist", "cifar10")


@dataclass(frozen=True)
class Preset:
    """A protocol, the strategies to compare and how many run seeds to add per invocation.

    ``protocol`` is a :class:`ProtocolConfig` (MNIST, CIFAR-10) or a
    :class:`~ceal_pipeline.validation.detection.protocol.DetectionProtocolConfig`.
    """

    name: str
    protocol: Any
    strategies: tuple[str, ...]
    repeats: int


def paper_acquire_per_round(dataset: str, initial_fraction: float) -> int:
    """The paper's batch per round: 600 on MNIST; on CIFAR-10 500 from the 1%
    initial pool and 1,250 from the 25% one."""
    if dataset == "mnist":
        return 600
    return 500 if initial_fraction < 0.1 else 1250


def _paper_on_a_cpu(paper: Preset) -> Preset:
    """The paper's sizes with one training a round, T = 10, half width, <= 10 epochs."""
    protocol = replace(paper.protocol, trainings_per_round=1, mc_samples=10, epochs=10, patience=2, width=0.5,
                       batch_size=64)
    return Preset("paper-cpu", protocol, tuple(paper_strategies((2500, 5000, 10000), bald=False)), 3)


def _mnist(name: str) -> Preset:
    if name == "paper-cpu":
        return _paper_on_a_cpu(_mnist("paper"))
    if name == "paper":
        protocol = ProtocolConfig(dataset="mnist", initial_fraction=0.01, rounds=10, acquire_per_round=600,
                                  trainings_per_round=3, mc_samples=20, pool_size=None, validation_size=1000,
                                  epochs=50, patience=5, width=1.0)
        return Preset(name, protocol, tuple(paper_strategies((2500, 5000, 10000))), 3)
    if name == "cpu":
        # 6,000 pool images = 1/10 of the paper's 60,000, so every count is divided by
        # 10: 600 a round becomes 60 and the candidate pools 2,500 / 5,000 / 10,000
        # become 250 / 500 / 1,000. About 5-10 CPU-minutes per seed and initial pool.
        protocol = ProtocolConfig(dataset="mnist", initial_fraction=0.01, rounds=10, acquire_per_round=60,
                                  trainings_per_round=1, mc_samples=10, pool_size=6000, test_size=5000,
                                  validation_size=500, epochs=15, patience=3, width=0.5)
        return Preset(name, protocol, tuple(paper_strategies((250, 500, 1000), bald=False)), 3)
    protocol = ProtocolConfig(dataset="mnist", initial_fraction=0.05, rounds=3, acquire_per_round=100,
                              trainings_per_round=1, mc_samples=8, pool_size=3000, test_size=2000,
                              validation_size=300, epochs=6, patience=2, width=0.5)
    return Preset(name, protocol, tuple(paper_strategies((250, 500, 1000))), 1)


def _cifar10(name: str) -> Preset:
    if name == "paper-cpu":
        return _paper_on_a_cpu(_cifar10("paper"))
    if name == "paper":
        protocol = ProtocolConfig(dataset="cifar10", initial_fraction=0.01, rounds=10, acquire_per_round=500,
                                  trainings_per_round=3, mc_samples=20, pool_size=None, validation_size=1000,
                                  epochs=100, patience=10, width=1.0, augment=True)
        return Preset(name, protocol, tuple(paper_strategies((2500, 5000, 10000))), 3)
    if name == "cpu":
        # A reduced run: 4,000 pool images (2/25 of the paper's 50,000), a 1/8-width
        # VGG-11-BN, 4 rounds of 200; the candidate pool of 400 is a tenth of the pool,
        # as 5,000 is of 50,000. About 10 CPU-minutes per seed for three strategies.
        protocol = ProtocolConfig(dataset="cifar10", initial_fraction=0.05, rounds=4, acquire_per_round=200,
                                  trainings_per_round=1, mc_samples=10, pool_size=4000, test_size=2000,
                                  validation_size=500, epochs=10, patience=3, width=0.125, augment=True)
        return Preset(name, protocol, ("random", "entropy", "variation_ratios", "ceal_entropy_400",
                                       "ceal_variation_ratios_400"), 3)
    protocol = ProtocolConfig(dataset="cifar10", initial_fraction=0.05, rounds=2, acquire_per_round=100,
                              trainings_per_round=1, mc_samples=8, pool_size=2000, test_size=1000,
                              validation_size=200, epochs=3, patience=2, width=0.125, augment=True)
    return Preset(name, protocol, tuple(paper_strategies((250, 500, 1000))), 1)


def get_preset(dataset: str, name: str = "quick", overrides: dict[str, Any] | None = None,
               strategies: list[str] | None = None, repeats: int | None = None) -> Preset:
    """The preset ``name`` for ``dataset`` with protocol ``overrides`` applied.

    On the ``paper`` and ``paper-cpu`` presets, overriding ``initial_fraction`` without
    ``acquire_per_round`` also picks the paper's batch size for that pool.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    choose_preset(dict.fromkeys(PRESET_NAMES), name, f"{dataset} benchmark")
    preset = _mnist(name) if dataset == "mnist" else _cifar10(name)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if name in ("paper", "paper-cpu") and "initial_fraction" in overrides and "acquire_per_round" not in overrides:
        overrides["acquire_per_round"] = paper_acquire_per_round(dataset, overrides["initial_fraction"])
    return Preset(
        name=name,
        protocol=amend_preset(preset.protocol, overrides, "protocol"),
        strategies=tuple(strategies) if strategies else preset.strategies,
        repeats=preset.repeats if repeats is None else repeats,
    )
