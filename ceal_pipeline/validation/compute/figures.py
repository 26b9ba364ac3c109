"""How benchmarks report what they measured.

A duration rounded to a fixed number of decimals becomes 0.0 on a fast machine
(a 0.4 ms draw at ``round(x, 3)``), and a ratio of rounded figures drifts from
the ratio of the measurements. Durations are therefore rounded to significant
figures: a positive measurement stays positive however fast the machine, and
ratios are computed from the unrounded values.
"""

from __future__ import annotations

import math

#: Significant figures kept in every reported duration or ratio.
SIGNIFICANT_FIGURES = 4


def seconds(value: float, digits: int = SIGNIFICANT_FIGURES) -> float:
    """``value`` (seconds, or any positive figure) to ``digits`` significant figures.

    Zero, negative and non-finite values are returned unchanged, so a bug that
    produces them is not hidden by the rounding.
    """
    value = float(value)
    if value <= 0.0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(value)))


def ratio(numerator: float, denominator: float, digits: int = SIGNIFICANT_FIGURES) -> float:
    """``numerator / denominator`` of unrounded measurements, to ``digits`` significant figures."""
    if denominator <= 0.0:
        raise ValueError(f"a benchmark ratio needs a positive denominator, got {denominator!r}")
    return seconds(numerator / denominator, digits)
