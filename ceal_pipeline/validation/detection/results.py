"""Mean ± std over run seeds of the detection benchmark, and its one-line JSON summary.

Runs come from the shared append-only store
(:class:`~ceal_pipeline.validation.results.BenchmarkResults`, file
``detection.jsonl``). mAP and AP are fractions in [0, 1]; shares are fractions
of the frames bought (or of the unlabeled pool); seconds are means per run;
standard deviations are sample ones (``ddof=1``), 0 with a single seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ceal_pipeline.validation.detection.data import SUBPOPULATIONS, add_counts, subpopulation_shares
from ceal_pipeline.validation.detection.strategies import parse_detection_strategy, unpruned_twin
from ceal_pipeline.validation.report import compute_ratios
from ceal_pipeline.validation.results import mean_std


@dataclass(frozen=True)
class DetectionStrategySummary:
    """One strategy over its seeds: ``map_mean[r]`` / ``map_std[r]`` after round ``r``,
    final per-class AP (mean, std; None where no seed had that class), the share of
    each sub-population among the frames it bought (mean over seeds), compute
    (forward passes, frames scored and pruned, seconds) as means per run."""

    strategy: str
    seeds: list[int]
    map_mean: list[float]
    map_std: list[float]
    labeled_per_round: list[int]
    per_class_ap: dict[str, tuple[float, float] | None]
    bought_shares: dict[str, float]
    forward_passes: float
    frames_scored: float
    frames_pruned: float
    acquisition_s: float
    training_s: float
    evaluation_s: float

    @property
    def final_map(self) -> float:
        return self.map_mean[-1]

    @property
    def final_map_std(self) -> float:
        return self.map_std[-1]


def _mean_std_present(values: list[float | None]) -> tuple[float, float] | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return mean_std(present) if present else None


def summarise_detection(runs: list[dict[str, Any]]) -> dict[str, DetectionStrategySummary]:
    """Group runs of one protocol by strategy (first-seen order) into summaries."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(run["strategy"], []).append(run)
    summaries = {}
    for strategy, group in grouped.items():
        lengths = {len(r["map_per_round"]) for r in group}
        if len(lengths) != 1:
            raise ValueError(f"strategy {strategy!r}: runs with different round counts {sorted(lengths)}; "
                             "summarise one protocol_key at a time")
        per_round = [mean_std([r["map_per_round"][i] for r in group]) for i in range(lengths.pop())]
        classes = list(group[0]["per_class_ap_per_round"][-1])
        shares = [subpopulation_shares(add_counts(r["bought_per_round"])) for r in group]
        summaries[strategy] = DetectionStrategySummary(
            strategy=strategy,
            seeds=sorted(int(r["run_seed"]) for r in group),
            map_mean=[m for m, _ in per_round],
            map_std=[s for _, s in per_round],
            labeled_per_round=list(group[0]["labeled_per_round"]),
            per_class_ap={c: _mean_std_present([r["per_class_ap_per_round"][-1].get(c) for r in group])
                          for c in classes},
            bought_shares={name: mean_std([s[name] for s in shares])[0] for name in SUBPOPULATIONS},
            forward_passes=mean_std([r["forward_passes"] for r in group])[0],
            frames_scored=mean_std([r["frames_scored"] for r in group])[0],
            frames_pruned=mean_std([r["frames_pruned"] for r in group])[0],
            acquisition_s=mean_std([r["acquisition_s"] for r in group])[0],
            training_s=mean_std([r["training_s"] for r in group])[0],
            evaluation_s=mean_std([sum(r["evaluation_s"]) for r in group])[0],
        )
    return summaries


def _per_seed(runs: list[dict[str, Any]], key: str) -> dict[int, dict[str, Any]]:
    """The run-seed-level record ``key`` (the same in every strategy run of a seed), one per seed."""
    return {int(r["run_seed"]): r[key] for r in runs}


def score_error_summary(runs: list[dict[str, Any]], key: str = "score_error_spearman") -> dict[str, dict[str, Any]]:
    """``{function: {"mean", "std", "seeds"}}`` of a per-seed correlation over the run seeds."""
    per_seed = _per_seed(runs, key)
    names = list(dict.fromkeys(name for values in per_seed.values() for name in values))
    out = {}
    for name in names:
        values = [v[name] for v in per_seed.values() if v.get(name) is not None]
        mean, std = mean_std(values) if values else (None, None)
        out[name] = {"mean": mean, "std": std, "seeds": len(values)}
    return out


def pool_shares(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each sub-population's share of the unlabeled pool before the first acquisition, mean over seeds."""
    shares = [subpopulation_shares(counts) for counts in _per_seed(runs, "pool_subpopulations").values()]
    return {name: mean_std([s[name] for s in shares])[0] for name in SUBPOPULATIONS} if shares else {}


def pruning_effect(summaries: dict[str, DetectionStrategySummary]) -> dict[str, dict[str, float]]:
    """For each pruned CEAL strategy whose unpruned twin ran: frames pruned, forward passes
    saved (twin minus pruned, per run) and mAP cost (twin's final mAP minus the pruned one's)."""
    effect = {}
    for name, summary in summaries.items():
        twin = unpruned_twin(name)
        if twin in summaries:
            effect[name] = {
                "compared_with": twin,
                "frames_pruned": summary.frames_pruned,
                "forward_passes_saved": summaries[twin].forward_passes - summary.forward_passes,
                "map_cost": summaries[twin].final_map - summary.final_map,
            }
    return effect


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def detection_summary_json(summaries: dict[str, DetectionStrategySummary], runs: list[dict[str, Any]],
                           **extra: Any) -> dict[str, Any]:
    """The one-line JSON summary printed by ``ceal benchmark detection --json``."""
    ratios = compute_ratios(summaries, parse=parse_detection_strategy)
    error = score_error_summary(runs)
    return {
        "dataset": "detection",
        **extra,
        "strategies": {
            name: {
                "final_map": _r(s.final_map),
                "final_map_std": _r(s.final_map_std),
                "map_per_round": [_r(m) for m in s.map_mean],
                "map_std_per_round": [_r(d) for d in s.map_std],
                "labeled_per_round": s.labeled_per_round,
                "seeds": s.seeds,
                "forward_passes": int(round(s.forward_passes)),
                "frames_scored": int(round(s.frames_scored)),
                "frames_pruned": _r(s.frames_pruned, 2),
                "compute_vs_full_pool": _r(ratios.get(name), 4),
                "acquisition_s": round(s.acquisition_s, 3),
                "training_s": round(s.training_s, 3),
                "evaluation_s": round(s.evaluation_s, 3),
                "per_class_ap": {c: (None if v is None else _r(v[0])) for c, v in s.per_class_ap.items()},
                "bought_shares": {k: _r(v, 4) for k, v in s.bought_shares.items()},
            }
            for name, s in summaries.items()
        },
        "score_error_spearman": {fn: _r(v["mean"], 4) for fn, v in error.items()},
        "score_error_spearman_std": {fn: _r(v["std"], 4) for fn, v in error.items()},
        "score_missed_spearman": {fn: _r(v["mean"], 4) for fn, v in score_error_summary(runs, "score_missed_spearman").items()},
        "pool_shares": {k: _r(v, 4) for k, v in pool_shares(runs).items()},
        "pruning": {name: {k: (v if isinstance(v, str) else _r(v, 4)) for k, v in e.items()}
                    for name, e in pruning_effect(summaries).items()},
    }
