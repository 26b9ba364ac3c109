"""What a benchmark shows: the accuracy-per-round plot and the results table.

The line plot (:func:`curves_plot_png`) and :func:`png_markdown` also serve the
detection benchmark's mAP-per-round plot.

Plain strings and PNG bytes (no Dagster) so the CLI, the assets and a notebook
render the same thing. The compute ratio of a CEAL strategy is its MC forward
passes over those of the full-pool strategy with the same acquisition function
(the paper's "fraction of the compute"), which is independent of machine load;
seconds are shown beside it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Callable

from ceal_pipeline.validation.results import StrategySummary
from ceal_pipeline.validation.strategies import Strategy


def compute_ratios(summaries: dict, parse: Callable[[str], Strategy] = Strategy.parse) -> dict[str, float]:
    """``strategy -> forward passes / forward passes of its full-pool baseline``.

    Full-pool strategies map to 1.0; random, and CEAL strategies whose baseline
    was not run, are left out. ``summaries`` values need a ``forward_passes``;
    ``parse`` turns a name into its :class:`Strategy` (the detection benchmark
    passes its own).
    """
    baselines = {}
    for name in summaries:
        strategy = parse(name)
        if strategy.kind == "full_pool":
            baselines[strategy.acquisition_fn] = summaries[name].forward_passes
    ratios = {}
    for name, summary in summaries.items():
        strategy = parse(name)
        baseline = baselines.get(strategy.acquisition_fn) if strategy.kind != "random" else None
        if baseline:
            ratios[name] = summary.forward_passes / baseline
    return ratios


def results_table_markdown(summaries: dict[str, StrategySummary]) -> str:
    """Markdown table: final accuracy mean ± std over seeds, per-strategy compute."""
    ratios = compute_ratios(summaries)
    lines = [
        "| strategy | seeds | final accuracy (%) | labeled | frames scored | forward passes | compute vs full pool "
        "| acquisition (s) | training (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        ratio = f"{ratios[name]:.3f}" if name in ratios else "-"
        lines.append(
            f"| {name} | {len(s.seeds)} | {100 * s.final_accuracy:.2f} ± {100 * s.final_accuracy_std:.2f} "
            f"| {s.labeled_per_round[-1]} | {s.frames_scored:,.0f} | {s.forward_passes:,.0f} | {ratio} "
            f"| {s.acquisition_s:.1f} | {s.training_s:.1f} |"
        )
    return "\n".join(lines)


def accuracy_per_round_markdown(summaries: dict[str, StrategySummary]) -> str:
    """Markdown table of mean ± std test accuracy (%) after every round."""
    rounds = max(len(s.accuracy_mean) for s in summaries.values())
    header = "| strategy | " + " | ".join(f"r{r}" for r in range(rounds)) + " |"
    lines = [header, "|---|" + "---:|" * rounds]
    for name, s in summaries.items():
        cells = [f"{100 * m:.2f}±{100 * d:.2f}" for m, d in zip(s.accuracy_mean, s.accuracy_std)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_plot_png(summaries: dict[str, StrategySummary], title: str) -> bytes:
    """Test accuracy (%) against labeled images, one line per strategy with a ±1 std band."""
    curves = {
        name: PlotCurve(x=s.labeled_per_round, mean=[100 * m for m in s.accuracy_mean],
                        std=[100 * d for d in s.accuracy_std], kind=Strategy.parse(name).kind, seeds=len(s.seeds))
        for name, s in summaries.items()
    }
    return curves_plot_png(curves, title, xlabel="labeled images", ylabel="test accuracy (%)")


@dataclass(frozen=True)
class PlotCurve:
    """One strategy's line: mean and std (same unit) at each ``x``; ``kind`` picks
    the line style (random dotted, full pool solid, CEAL dashed); ``seeds`` goes in the legend."""

    x: list[float]
    mean: list[float]
    std: list[float]
    kind: str
    seeds: int


def curves_plot_png(curves: dict[str, PlotCurve], title: str, *, xlabel: str, ylabel: str) -> bytes:
    """A PNG line plot, one line per strategy with a ±1 std band (MNIST accuracy, detection mAP)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=100)
    try:
        for name, curve in curves.items():
            style = {"random": ":", "full_pool": "-", "ceal": "--"}[curve.kind]
            line, = ax.plot(curve.x, curve.mean, style, marker="o", markersize=3, label=f"{name} (n={curve.seeds})")
            ax.fill_between(curve.x, [m - d for m, d in zip(curve.mean, curve.std)],
                            [m + d for m, d in zip(curve.mean, curve.std)], color=line.get_color(), alpha=0.12)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, ncol=2)
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def png_markdown(png: bytes, alt: str) -> str:
    """Embed PNG bytes as an inline base64 image in markdown (the Dagster UI renders it)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
