"""Mean ± std over run seeds of the detection benchmark, paired differences to random, and its one-line JSON summary.

The headline (issue 18) is paired: per strategy the area under its
mAP-versus-labeled-frames curve (``alc``; also against labeling cost and
labeled boxes), its final mAP and its final unclipped mAP, each as the mean
difference to random *of the same run seed* with a 95 % t-interval
(:mod:`.paired`), and its labels to parity: the labeled frames and cost at
which its curve reaches random's final mAP, against what random spent.

Runs come from the shared append-only store
(:class:`~ceal_pipeline.validation.results.BenchmarkResults`, file
``detection.jsonl``). mAP and AP are fractions in [0, 1]; shares are fractions
of the frames bought (or of the unlabeled pool); seconds are means per run;
standard deviations are sample ones (``ddof=1``), 0 with a single seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ceal_pipeline.validation.detection.data import SUBPOPULATIONS, add_counts, subpopulation_shares
from ceal_pipeline.validation.detection.paired import (
    area_under_curve,
    curve_on_common_axis,
    labels_to_parity,
    paired_difference,
)
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


def run_alc(run: dict[str, Any], axis: str = "labeled_per_round", values: str = "map_per_round") -> float:
    """A run's area under ``values`` against ``axis`` over the axis width (mean mAP over its range)."""
    return area_under_curve(run[axis], run[values])


#: Per-seed headline values of a run: name -> function of the stored run.
HEADLINE_METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
    "alc": run_alc,
    "alc_cost": lambda run: run_alc(run, "cost_per_round"),
    "alc_unclipped": lambda run: run_alc(run, values="map_unclipped_per_round"),
    "final_map": lambda run: float(run["map_per_round"][-1]),
    "final_map_unclipped": lambda run: float(run["map_unclipped_per_round"][-1]),
    "final_cost": lambda run: float(run["cost_per_round"][-1]),
    # mAP points bought per unit of money: the final mAP gain over round 0 divided by what was spent after it.
    "map_gain_per_cost": lambda run: float((run["map_per_round"][-1] - run["map_per_round"][0])
                                           / max(run["cost_per_round"][-1] - run["cost_per_round"][0], 1e-12)),
}


def _by_strategy_seed(runs: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    grouped: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(run["strategy"], {})[int(run["run_seed"])] = run
    return grouped


def _equal_boxes_alc(run: dict[str, Any], low: float, high: float) -> float:
    """Area under mAP against labeled boxes over ``[low, high]`` divided by its width."""
    grid = np.linspace(low, high, 33)
    return area_under_curve(grid, curve_on_common_axis(run["boxes_per_round"], run["map_per_round"], grid))


def paired_summary(runs: list[dict[str, Any]], baseline: str = "random") -> dict[str, dict[str, Any]]:
    """Per strategy: each :data:`HEADLINE_METRICS` value (mean over seeds), its paired
    difference to ``baseline`` (``mean``, ``ci95``, ``seeds``), the ALC at equal boxes and its
    difference, and labels to parity. Empty when ``baseline`` did not run."""
    grouped = _by_strategy_seed(runs)
    if baseline not in grouped:
        return {}
    base = grouped[baseline]
    out: dict[str, dict[str, Any]] = {}
    for strategy, by_seed in grouped.items():
        entry: dict[str, Any] = {}
        for name, metric in HEADLINE_METRICS.items():
            mine = {seed: metric(run) for seed, run in by_seed.items()}
            entry[name] = float(np.mean(list(mine.values())))
            common = set(mine) & set(base)
            entry[f"{name}_vs_{baseline}"] = (
                paired_difference(mine, {s: metric(base[s]) for s in common}) if common else None)
        # Equal budgets of boxes: both curves read over the box range they share, per seed.
        box_alc, box_base = {}, {}
        for seed in set(by_seed) & set(base):
            a, b = by_seed[seed]["boxes_per_round"], base[seed]["boxes_per_round"]
            low, high = max(a[0], b[0]), min(a[-1], b[-1])
            if high > low:
                box_alc[seed], box_base[seed] = _equal_boxes_alc(by_seed[seed], low, high), \
                    _equal_boxes_alc(base[seed], low, high)
        entry["alc_boxes"] = float(np.mean(list(box_alc.values()))) if box_alc else None
        # The metric's split: the headline class apart from the rest (None where no seed has it).
        for key, name in (("car_ap_per_round", "final_car_ap"), ("non_car_map_per_round", "final_non_car_map")):
            present = [run[key][-1] for run in by_seed.values() if run.get(key) and run[key][-1] is not None]
            entry[name] = float(np.mean(present)) if present else None
        entry[f"alc_boxes_vs_{baseline}"] = paired_difference(box_alc, box_base) if box_alc else None
        # Labels to parity: where this strategy's curve reaches the baseline's final mAP of the seed.
        parity_frames, parity_cost, shares = [], [], []
        for seed in sorted(set(by_seed) & set(base)):
            run, target = by_seed[seed], float(base[seed]["map_per_round"][-1])
            frames = labels_to_parity(run["labeled_per_round"], run["map_per_round"], target)
            cost = labels_to_parity(run["cost_per_round"], run["map_per_round"], target)
            parity_frames.append(frames)
            parity_cost.append(cost)
            shares.append(None if frames is None else frames / base[seed]["labeled_per_round"][-1])
        reached = [s for s in shares if s is not None]
        entry["labels_to_parity"] = {
            "frames_per_seed": parity_frames, "cost_per_seed": parity_cost,
            "seeds_reaching": len(reached), "seeds": len(shares),
            "share_of_random_labels": float(np.mean(reached)) if reached else None,
        }
        out[strategy] = entry
    return out


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def _paired_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"mean": _r(value["mean"]), "ci95": None if value["ci95"] is None else [_r(v) for v in value["ci95"]],
            "seeds": value["seeds"]}


def detection_summary_json(summaries: dict[str, DetectionStrategySummary], runs: list[dict[str, Any]],
                           **extra: Any) -> dict[str, Any]:
    """The one-line JSON summary printed by ``ceal bench detection --json``."""
    ratios = compute_ratios(summaries, parse=parse_detection_strategy)
    error = score_error_summary(runs)
    paired = paired_summary(runs)

    def headline(name: str) -> dict[str, Any]:
        entry = paired.get(name)
        if entry is None:
            return {"alc": None, "paired_vs_random": None}
        parity = entry["labels_to_parity"]
        vs = {metric: _paired_json(entry[f"{metric}_vs_random"]) for metric in (*HEADLINE_METRICS, "alc_boxes")}
        return {
            "alc": _r(entry["alc"]), "alc_cost": _r(entry["alc_cost"]), "alc_boxes": _r(entry["alc_boxes"]),
            "alc_unclipped": _r(entry["alc_unclipped"]), "final_map_unclipped": _r(entry["final_map_unclipped"]),
            "final_cost": _r(entry["final_cost"], 2), "map_gain_per_cost": _r(entry["map_gain_per_cost"], 7),
            "final_car_ap": _r(entry["final_car_ap"]), "final_non_car_map": _r(entry["final_non_car_map"]),
            # The headline difference: ALC minus random's, paired by seed; the other metrics beside it.
            "paired_vs_random": {**(vs["alc"] or {"mean": None, "ci95": None, "seeds": []}), "metric": "alc",
                                 **{m: v for m, v in vs.items() if m != "alc"}},
            "labels_to_parity": {"share_of_random_labels": _r(parity["share_of_random_labels"], 4),
                                 "seeds_reaching": parity["seeds_reaching"], "seeds": parity["seeds"],
                                 "frames_per_seed": [_r(v, 2) for v in parity["frames_per_seed"]],
                                 "cost_per_seed": [_r(v, 2) for v in parity["cost_per_seed"]]},
        }

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
                **headline(name),
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
