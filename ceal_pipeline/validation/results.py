"""The benchmark results store: one JSON line per finished (strategy, seed) run.

Results live in ``<folder>/<dataset>.jsonl``; the CLI and the Dagster assets
use ``$CEAL_HOME/validation`` (:func:`default_results_folder`).
A rerun *adds* seeds: the store is append-only, runs are grouped by the
protocol's key (a hash of every setting that changes the numbers), and :meth:`BenchmarkResults.next_seeds` hands out seeds not yet run,
so repeated materializations tighten the error bars instead of overwriting
them. JSON lines rather than DuckDB because a benchmark run writes a handful of
rows, people read and diff the file, and appends from two processes are made
safe by an exclusive ``flock`` around each one-line write.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ceal_pipeline.configuration import storage_home


#: The per-round quality a stored run must carry: test accuracy (MNIST, CIFAR-10) or held-out mAP (detection).
PER_ROUND_METRICS = ("accuracy_per_round", "map_per_round")


def default_results_folder() -> Path:
    """``$CEAL_HOME/validation`` (``CEAL_HOME`` defaults to ``./.ceal``), absolute."""
    return storage_home() / "validation"


class BenchmarkResults:
    """Append-only store of benchmark runs under ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, dataset: str) -> Path:
        if not dataset.isidentifier():
            raise ValueError(f"dataset name {dataset!r} must be a plain identifier such as 'mnist' or 'cifar10'")
        return self.folder / f"{dataset}.jsonl"

    def append(self, run: dict[str, Any]) -> None:
        """Append one finished run (a ``StrategyRun.to_dict()`` dict of either benchmark):
        it names its dataset, protocol key, strategy and run seed, and carries a
        per-round quality (``accuracy_per_round`` or ``map_per_round``)."""
        missing = [key for key in ("dataset", "protocol_key", "strategy", "run_seed") if key not in run]
        if not any(key in run for key in PER_ROUND_METRICS):
            missing.append(" or ".join(PER_ROUND_METRICS))
        if missing:
            raise ValueError(f"benchmark run is missing {', '.join(map(repr, missing))}; store StrategyRun.to_dict() output")
        path = self.path(run["dataset"])
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(run, sort_keys=True) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def runs(self, dataset: str, protocol_key: str | None = None) -> list[dict[str, Any]]:
        """Every stored run of ``dataset`` (of one protocol if ``protocol_key``), oldest first.

        A rerun of an already stored (strategy, seed) keeps the latest line, so a
        repeated seed never counts twice in a mean.
        """
        path = self.path(dataset)
        if not path.is_file():
            return []
        latest: dict[tuple[str, str, int], dict[str, Any]] = {}
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    run = json.loads(line)
                except json.JSONDecodeError:
                    # A line cut by a crash mid-write: skip it rather than lose the file.
                    if line.endswith("\n"):
                        raise ValueError(f"{path}:{number} is not valid JSON; fix or delete that line") from None
                    continue
                if protocol_key is None or run["protocol_key"] == protocol_key:
                    latest[(run["protocol_key"], run["strategy"], int(run["run_seed"]))] = run
        return list(latest.values())

    def completed_seeds(self, dataset: str, protocol_key: str, strategy: str) -> set[int]:
        return {int(r["run_seed"]) for r in self.runs(dataset, protocol_key) if r["strategy"] == strategy}

    def next_seeds(self, dataset: str, protocol_key: str, strategies: Iterable[str], count: int, base_seed: int = 0) -> list[int]:
        """``count`` seeds from ``base_seed`` upwards that not every strategy has run yet."""
        strategies = list(strategies)
        done = [self.completed_seeds(dataset, protocol_key, s) for s in strategies]
        seeds, candidate = [], base_seed
        while len(seeds) < count:
            if not all(candidate in d for d in done):
                seeds.append(candidate)
            candidate += 1
        return seeds


@dataclass(frozen=True)
class StrategySummary:
    """Mean and standard deviation over seeds of one strategy's runs.

    Accuracies are fractions in [0, 1]; seconds are means per run; the standard
    deviation is the sample one (``ddof=1``), 0 with a single seed.
    """

    strategy: str
    seeds: list[int]
    accuracy_mean: list[float]
    accuracy_std: list[float]
    labeled_per_round: list[int]
    forward_passes: float
    frames_scored: float
    acquisition_s: float
    training_s: float

    @property
    def final_accuracy(self) -> float:
        return self.accuracy_mean[-1]

    @property
    def final_accuracy_std(self) -> float:
        return self.accuracy_std[-1]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of ``values``."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(runs: list[dict[str, Any]]) -> dict[str, StrategySummary]:
    """Group runs by strategy (in first-seen order) into :class:`StrategySummary`.

    Runs of one strategy must share the number of rounds; mixing protocols is a
    caller error (select runs by ``protocol_key`` first).
    """
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(run["strategy"], []).append(run)
    summaries = {}
    for strategy, group in grouped.items():
        lengths = {len(r["accuracy_per_round"]) for r in group}
        if len(lengths) != 1:
            raise ValueError(f"strategy {strategy!r}: runs with different round counts {sorted(lengths)}; "
                             "summarise one protocol_key at a time")
        per_round = [mean_std([r["accuracy_per_round"][i] for r in group]) for i in range(lengths.pop())]
        summaries[strategy] = StrategySummary(
            strategy=strategy,
            seeds=sorted(int(r["run_seed"]) for r in group),
            accuracy_mean=[m for m, _ in per_round],
            accuracy_std=[s for _, s in per_round],
            labeled_per_round=list(group[0]["labeled_per_round"]),
            forward_passes=mean_std([r["forward_passes"] for r in group])[0],
            frames_scored=mean_std([r["frames_scored"] for r in group])[0],
            acquisition_s=mean_std([r["acquisition_s"] for r in group])[0],
            training_s=mean_std([r["training_s"] for r in group])[0],
        )
    return summaries


def summary_json(dataset: str, summaries: dict[str, StrategySummary], **extra: Any) -> dict[str, Any]:
    """The one-line JSON summary printed by ``ceal bench {mnist,cifar10} --json``."""
    return {
        "dataset": dataset,
        **extra,
        "strategies": {
            name: {
                "final_accuracy": round(s.final_accuracy, 5),
                "final_accuracy_std": round(s.final_accuracy_std, 5),
                "accuracy_per_round": [round(a, 5) for a in s.accuracy_mean],
                "accuracy_std_per_round": [round(a, 5) for a in s.accuracy_std],
                "seeds": s.seeds,
                "forward_passes": int(round(s.forward_passes)),
                "acquisition_s": round(s.acquisition_s, 3),
                "training_s": round(s.training_s, 3),
            }
            for name, s in summaries.items()
        },
    }
