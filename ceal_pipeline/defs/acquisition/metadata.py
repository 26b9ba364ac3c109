"""Metadata the acquisition assets show in the Dagster UI: tables and plots.

Plots are rendered with matplotlib's Agg backend (no display, imported lazily)
and embedded as base64 PNG inside markdown, which the UI renders inline. What
the UI shows about why frames were bought is in :mod:`.explanation_views`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import dagster as dg
import numpy as np


def histogram_markdown(
    values: Sequence[float],
    *,
    highlight: Sequence[float] | None = None,
    title: str,
    xlabel: str,
    labels: tuple[str, str] = ("all", "selected"),
) -> dg.MetadataValue:
    """A histogram of ``values`` (and ``highlight`` on top) as an inline PNG."""
    plt = pyplot()
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(5.0, 3.0), dpi=100)
    try:
        if values.size:
            bins = np.histogram_bin_edges(values, bins=min(40, max(5, values.size // 5)))
            ax.hist(values, bins=bins, color="#9aa7b8", label=labels[0])
            if highlight is not None and len(highlight):
                ax.hist(np.asarray(highlight, dtype=np.float64), bins=bins, color="#d1495b", label=labels[1])
                ax.legend(frameon=False)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("frames")
        return figure_markdown(fig, title)
    finally:
        plt.close(fig)


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported lazily: loading the code
    location must stay fast, and a worker has no display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_markdown(fig, title: str, caption: str = "", *, tight: bool = True) -> dg.MetadataValue:
    """``fig`` as a PNG embedded in markdown (base64 ``data:`` URI), with an optional caption
    below. The Dagster UI renders it inline: its markdown sanitizer allows ``data:`` image
    sources (``MarkdownWithPlugins.tsx`` in dagster-ui). ``tight=False`` keeps the figure's own
    layout (``tight_layout`` draws the whole figure once more: seconds for a large one)."""
    from PIL import Image

    if tight:
        fig.tight_layout()
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png")
    # A 256-colour palette makes the PNG ~3x smaller (it is stored in the event log with every
    # materialization) and changes nothing visible in a plot.
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(rendered.getvalue())) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = f"![{title}](data:image/png;base64,{encoded})"
    return dg.MetadataValue.md(text + (f"\n\n{caption}" if caption else ""))


def training_markdown(loss_curve: Sequence[dict], per_class_ap: dict, *, title: str) -> dg.MetadataValue:
    """The detector's training loss per epoch and its per-class AP on the val split, side by side, as a PNG."""
    plt = pyplot()
    fig, (loss_ax, ap_ax) = plt.subplots(1, 2, figsize=(9.0, 3.2), dpi=90)
    try:
        if loss_curve:
            epochs = [int(e["epoch"]) for e in loss_curve]
            for key, colour in (("loss", "#1f3a5f"), ("loss_heatmap", "#d1495b"), ("loss_bbox", "#edae49")):
                values = [e.get(key) for e in loss_curve]
                if all(v is not None for v in values):
                    loss_ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=key)
            loss_ax.legend(frameon=False)
        else:
            loss_ax.text(0.5, 0.5, "no per-epoch losses recorded", ha="center", va="center",
                         transform=loss_ax.transAxes)
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("training loss")
        loss_ax.set_title("training loss")
        names = list(per_class_ap)
        values = [float(per_class_ap[n]) for n in names]
        finite = [v for v in values if np.isfinite(v)]
        if names:
            ap_ax.bar(names, [v if np.isfinite(v) else 0.0 for v in values], color="#9aa7b8")
            for i, v in enumerate(values):
                ap_ax.text(i, (v if np.isfinite(v) else 0.0) + 0.02, f"{v:.2f}" if np.isfinite(v) else "n/a",
                           ha="center", fontsize=8)
            if finite:
                ap_ax.axhline(float(np.mean(finite)), color="#d1495b", linestyle="--",
                              label=f"mAP {np.mean(finite):.3f}")
                ap_ax.legend(frameon=False)
        else:
            ap_ax.text(0.5, 0.5, "not evaluated (no val frames)", ha="center", va="center", transform=ap_ax.transAxes)
        ap_ax.set_ylim(0.0, 1.05)
        ap_ax.set_ylabel("AP (BEV centre distance)")
        ap_ax.set_title("per-class AP, val split")
        fig.suptitle(title)
        return figure_markdown(fig, title)
    finally:
        plt.close(fig)


def ledger_markdown(ledger: dict) -> dg.MetadataValue:
    """The round's compute ledger as a two-column markdown table."""
    lines = ["| quantity | value |", "|---|---:|"]
    for key, value in ledger.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return dg.MetadataValue.md("\n".join(lines))
