"""Metadata the acquisition assets show in the Dagster UI: tables and plots.

Plots are rendered with matplotlib's Agg backend (no display, imported lazily)
and embedded as base64 PNG inside markdown, which the UI renders inline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import dagster as dg
import numpy as np


def top_frames_markdown(
    frame_ids: Sequence[str],
    scores: Sequence[float],
    sequence_ids: Sequence[str] | None = None,
    *,
    limit: int = 10,
    title: str = "",
) -> dg.MetadataValue:
    """A markdown table of the ``limit`` highest-scoring frames (score in nats)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = sorted(range(len(frame_ids)), key=lambda i: (-scores[i], frame_ids[i]))[:limit]
    lines = [f"**{title}**\n" if title else "", "| rank | frame | sequence | score (nats) |", "|---:|---|---|---:|"]
    for rank, i in enumerate(order, start=1):
        sequence = sequence_ids[i] if sequence_ids is not None else ""
        lines.append(f"| {rank} | `{frame_ids[i]}` | {sequence} | {scores[i]:.4f} |")
    return dg.MetadataValue.md("\n".join(line for line in lines if line))


def histogram_markdown(
    values: Sequence[float],
    *,
    highlight: Sequence[float] | None = None,
    title: str,
    xlabel: str,
    labels: tuple[str, str] = ("all", "selected"),
) -> dg.MetadataValue:
    """A histogram of ``values`` (and ``highlight`` on top) as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

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
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def ledger_markdown(ledger: dict) -> dg.MetadataValue:
    """The round's compute ledger as a two-column markdown table."""
    lines = ["| quantity | value |", "|---|---:|"]
    for key, value in ledger.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return dg.MetadataValue.md("\n".join(lines))
