"""Run a preset for new seeds, persist every run, and summarise the store.

The one entry point shared by ``ceal bench`` and the Dagster assets, so a
click in the UI and a command line give the same numbers into the same store.
:func:`run_missing` and :func:`stored_runs` (which seeds to run, what is
stored) are shared with the detection benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ceal_pipeline.validation.datasets import ImageClassificationData
from ceal_pipeline.validation.presets import Preset
from ceal_pipeline.validation.protocol import run_seed_protocol
from ceal_pipeline.validation.results import BenchmarkResults, StrategySummary, summarise


@dataclass(frozen=True)
class BenchmarkOutcome:
    """The seeds this invocation ran and the summary over every stored seed."""

    dataset: str
    protocol_key: str
    new_seeds: list[int]
    summaries: dict[str, StrategySummary]


def run_benchmark(
    preset: Preset,
    data: ImageClassificationData,
    results: BenchmarkResults,
    *,
    seeds: list[int] | None = None,
    base_seed: int = 0,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> BenchmarkOutcome:
    """Run ``preset.repeats`` seeds not yet in ``results`` (or exactly ``seeds``).

    Each finished (strategy, seed) run is appended at once; a (strategy, seed)
    already stored is not rerun, so an interrupted benchmark resumes where it
    stopped and a rerun adds seeds. ``device`` is the torch device to train on.
    """
    protocol = preset.protocol
    key = protocol.key()
    strategies = list(preset.strategies)
    seeds = run_missing(
        results, protocol.dataset, key, strategies, seeds=seeds, repeats=preset.repeats, base_seed=base_seed,
        run_seed=lambda seed, missing: run_seed_protocol(data, protocol, missing, seed, log=log, device=device,
                                                         on_run=lambda run: results.append(run.to_dict())),
    )
    summaries = summarise(stored_runs(results, protocol.dataset, key, strategies))
    return BenchmarkOutcome(protocol.dataset, key, list(seeds), summaries)


def run_missing(
    results: BenchmarkResults,
    dataset: str,
    protocol_key: str,
    strategies: list[str],
    *,
    seeds: list[int] | None,
    repeats: int,
    base_seed: int,
    run_seed: Callable[[int, list[str]], object],
) -> list[int]:
    """Call ``run_seed(seed, strategies not yet stored for it)`` for each seed to run.

    The seeds are exactly ``seeds``, or ``repeats`` seeds from ``base_seed`` up
    that not every strategy has in ``results`` yet; a (strategy, seed) already
    stored is never rerun, so an interrupted benchmark resumes where it stopped.
    ``run_seed`` appends each finished run to ``results``. Returns the seeds.
    """
    if seeds is None:
        seeds = results.next_seeds(dataset, protocol_key, strategies, repeats, base_seed)
    for seed in seeds:
        missing = [s for s in strategies if seed not in results.completed_seeds(dataset, protocol_key, s)]
        if missing:
            run_seed(seed, missing)
    return list(seeds)


def stored_runs(results: BenchmarkResults, dataset: str, protocol_key: str, strategies: list[str]) -> list[dict]:
    """The stored runs of ``strategies`` under one protocol, in the order of ``strategies``."""
    stored = [r for r in results.runs(dataset, protocol_key) if r["strategy"] in strategies]
    return sorted(stored, key=lambda r: strategies.index(r["strategy"]))
