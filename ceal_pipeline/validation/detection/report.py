"""What the detection benchmark shows: the mAP-per-round plot and markdown tables.

Plain strings and PNG bytes (no Dagster, no torch), rendered the same by the
CLI and the ``detection_benchmark`` asset. mAP and AP are shown in percent.
"""

from __future__ import annotations

from typing import Any

from ceal_pipeline.validation.detection.data import SUBPOPULATIONS
from ceal_pipeline.validation.detection.results import (
    DetectionStrategySummary,
    paired_summary,
    pool_shares,
    pruning_effect,
    score_error_summary,
)
from ceal_pipeline.validation.detection.strategies import parse_detection_strategy
from ceal_pipeline.validation.report import PlotCurve, compute_ratios, curves_plot_png


def map_plot_png(summaries: dict[str, DetectionStrategySummary], title: str) -> bytes:
    """Held-out mAP (%) against labeled frames, one line per strategy with a ±1 std band."""
    curves = {
        name: PlotCurve(x=s.labeled_per_round, mean=[100 * m for m in s.map_mean], std=[100 * d for d in s.map_std],
                        kind=parse_detection_strategy(name).kind, seeds=len(s.seeds))
        for name, s in summaries.items()
    }
    return curves_plot_png(curves, title, xlabel="labeled frames", ylabel="held-out mAP (%)")


def results_table_markdown(summaries: dict[str, DetectionStrategySummary]) -> str:
    """Final mAP mean ± std, compute against the full-pool baseline, seconds per run."""
    ratios = compute_ratios(summaries, parse=parse_detection_strategy)
    lines = ["| strategy | seeds | final mAP (%) | labeled | frames scored | forward passes | compute vs full pool "
             "| frames pruned | acquisition (s) | training (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summaries.items():
        ratio = f"{ratios[name]:.3f}" if name in ratios else "-"
        lines.append(f"| {name} | {len(s.seeds)} | {100 * s.final_map:.2f} ± {100 * s.final_map_std:.2f} "
                     f"| {s.labeled_per_round[-1]} | {s.frames_scored:,.0f} | {s.forward_passes:,.0f} | {ratio} "
                     f"| {s.frames_pruned:.1f} | {s.acquisition_s:.1f} | {s.training_s:.1f} |")
    return "\n".join(lines)


def map_per_round_markdown(summaries: dict[str, DetectionStrategySummary]) -> str:
    """Mean ± std held-out mAP (%) after every round."""
    rounds = max(len(s.map_mean) for s in summaries.values())
    lines = ["| strategy | " + " | ".join(f"r{r}" for r in range(rounds)) + " |", "|---|" + "---:|" * rounds]
    for name, s in summaries.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * m:.2f}±{100 * d:.2f}" for m, d in zip(s.map_mean, s.map_std))
                     + " |")
    return "\n".join(lines)


def per_class_markdown(summaries: dict[str, DetectionStrategySummary]) -> str:
    """Final per-class AP (%) mean ± std ("-" where no held-out frame had the class)."""
    classes = list(next(iter(summaries.values())).per_class_ap)
    lines = ["| strategy | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for name, s in summaries.items():
        cells = ["-" if s.per_class_ap[c] is None else f"{100 * s.per_class_ap[c][0]:.2f}±{100 * s.per_class_ap[c][1]:.2f}"
                 for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def subpopulations_markdown(summaries: dict[str, DetectionStrategySummary], runs: list[dict[str, Any]]) -> str:
    """Share (%) of each sub-population among the frames each strategy bought, against the pool's share."""
    pool = pool_shares(runs)
    lines = ["| bought by | " + " | ".join(SUBPOPULATIONS) + " |", "|---|" + "---:|" * len(SUBPOPULATIONS),
             "| *unlabeled pool* | " + " | ".join(f"{100 * pool.get(k, 0):.1f}" for k in SUBPOPULATIONS) + " |"]
    for name, s in summaries.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * s.bought_shares[k]:.1f}" for k in SUBPOPULATIONS) + " |")
    return "\n".join(lines)


def score_error_markdown(runs: list[dict[str, Any]]) -> str:
    """Spearman rho of acquisition value against detection error (and against missed boxes) per function."""
    error, missed = score_error_summary(runs), score_error_summary(runs, "score_missed_spearman")

    def cell(value: dict[str, Any]) -> str:
        return "-" if value["mean"] is None else f"{value['mean']:+.3f} ± {value['std']:.3f} (n={value['seeds']})"

    lines = ["| acquisition function | rho vs missed + false boxes | rho vs missed boxes |", "|---|---:|---:|"]
    for name in error:
        lines.append(f"| {name} | {cell(error[name])} | {cell(missed[name])} |")
    return "\n".join(lines)


def pruning_markdown(summaries: dict[str, DetectionStrategySummary]) -> str:
    """Frames pruned, forward passes saved and mAP cost of each pruned strategy against its twin."""
    lines = ["| pruned strategy | against | frames pruned | forward passes saved | mAP cost (points) |",
             "|---|---|---:|---:|---:|"]
    for name, e in pruning_effect(summaries).items():
        lines.append(f"| {name} | {e['compared_with']} | {e['frames_pruned']:.1f} | {e['forward_passes_saved']:,.0f} "
                     f"| {100 * e['map_cost']:+.2f} |")
    return "\n".join(lines)


def paired_markdown(runs: list[dict[str, Any]]) -> str:
    """The headline: each strategy's ALC (against frames, cost and boxes) and final mAP, as the
    paired difference to random (points, mean [95 % CI]) and its labels to parity."""

    def cell(value: dict[str, Any] | None) -> str:
        if value is None:
            return "-"
        ci = value["ci95"]
        interval = f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci is not None else ""
        return f"{100 * value['mean']:+.2f}{interval}"

    lines = ["| strategy | ALC (%) | Δ ALC vs random | Δ ALC vs cost | Δ ALC at equal boxes | Δ final mAP "
             "| Δ final mAP unclipped | labels to parity (share of random's) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in paired_summary(runs).items():
        parity = e["labels_to_parity"]
        share = parity["share_of_random_labels"]
        reached = (f"{100 * share:.0f} % ({parity['seeds_reaching']}/{parity['seeds']} seeds)" if share is not None
                   else f"not reached (0/{parity['seeds']} seeds)")
        lines.append(f"| {name} | {100 * e['alc']:.2f} | {cell(e['alc_vs_random'])} | {cell(e['alc_cost_vs_random'])} "
                     f"| {cell(e['alc_boxes_vs_random'])} | {cell(e['final_map_vs_random'])} "
                     f"| {cell(e['final_map_unclipped_vs_random'])} | {reached} |")
    return "\n".join(lines)
