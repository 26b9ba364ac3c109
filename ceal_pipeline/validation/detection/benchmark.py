"""Run a detection preset for new seeds, persist every run, and summarise the store.

The one entry point of ``ceal bench detection`` and the
``detection_benchmark`` asset, so both give the same numbers into the same
store (``<results>/detection.jsonl``). Which seeds run, and that a stored
(strategy, seed) is never rerun, is the MNIST benchmark's rule
(:func:`ceal_pipeline.validation.benchmark.run_missing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ceal_pipeline.validation.benchmark import run_missing, stored_runs
from ceal_pipeline.validation.detection.presets import DetectionPreset
from ceal_pipeline.validation.detection.protocol import DATASET
from ceal_pipeline.validation.detection.results import DetectionStrategySummary, summarise_detection
from ceal_pipeline.validation.results import BenchmarkResults


@dataclass(frozen=True)
class DetectionBenchmarkOutcome:
    """The seeds this invocation ran, the stored runs of the protocol and their summary."""

    protocol_key: str
    new_seeds: list[int]
    runs: list[dict[str, Any]]
    summaries: dict[str, DetectionStrategySummary]


def detection_cache_folder(results: BenchmarkResults) -> Path:
    """Where the synthetic data and the runs' checkpoints go: ``<results>/../cache/detection``."""
    return results.folder.parent / "cache" / "detection"


def summarise_stored(preset: DetectionPreset, results: BenchmarkResults) -> DetectionBenchmarkOutcome:
    """The summary of what is stored for ``preset``'s protocol; runs nothing."""
    key = preset.protocol.key()
    runs = stored_runs(results, DATASET, key, list(preset.strategies))
    return DetectionBenchmarkOutcome(key, [], runs, summarise_detection(runs))


def run_detection_benchmark(
    preset: DetectionPreset,
    results: BenchmarkResults,
    *,
    seeds: list[int] | None = None,
    base_seed: int = 0,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
    num_workers: int | None = None,
    batch_size: int | None = None,
) -> DetectionBenchmarkOutcome:
    """Run ``preset.repeats`` seeds not yet in ``results`` (or exactly ``seeds``) and summarise.

    Each finished (strategy, seed) run is appended at once, so an interrupted
    benchmark resumes where it stopped. ``device``, ``num_workers`` (frame-loader
    processes) and ``batch_size`` change the speed, never the numbers.
    """
    from ceal_pipeline.validation.detection.data import load_detection_data
    from ceal_pipeline.validation.detection.protocol import RunOptions, run_seed_protocol

    protocol = preset.protocol
    cache = detection_cache_folder(results)
    options = RunOptions(work_dir=cache / "runs", device=device, num_workers=num_workers, batch_size=batch_size)
    loaded: dict[str, Any] = {}

    def run_seed(seed: int, missing: list[str]) -> None:
        if not loaded:  # generated (or read) only when a seed is missing
            loaded["data"] = load_detection_data(
                cache, frames=protocol.frames, frames_per_sequence=protocol.frames_per_sequence,
                generator_seed=protocol.generator_seed, held_out_frames=protocol.held_out_frames)
        run_seed_protocol(loaded["data"], protocol, missing, seed, options, log=log,
                          on_run=lambda run: results.append(run.to_dict()))

    new_seeds = run_missing(results, DATASET, protocol.key(), list(preset.strategies), seeds=seeds,
                            repeats=preset.repeats, base_seed=base_seed, run_seed=run_seed)
    outcome = summarise_stored(preset, results)
    return DetectionBenchmarkOutcome(outcome.protocol_key, new_seeds, outcome.runs, outcome.summaries)
