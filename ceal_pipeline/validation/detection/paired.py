"""The detection benchmark's headline statistics: learning-curve areas, paired differences, labels to parity.

Every strategy of a run seed starts from the same seed set and the same
round-0 detector, so strategies are compared *within* a seed and the seed-to-
seed spread (which, unpaired, hid a real +2-point edge under ±1.3 points of
noise) cancels:

- :func:`area_under_curve`: the area under mAP against labeled frames (or
  labeling cost, or labeled boxes), divided by the width of the axis, so it is
  the curve's mean mAP over the range it spans (a fraction in [0, 1]);
- :func:`paired_difference`: per seed, a strategy's value minus random's; the
  mean and a two-sided 95 % Student-t interval over seeds
  (``t_{0.975, n-1} s / sqrt(n)``), None with a single seed;
- :func:`labels_to_parity`: the labeled frames (or cost) at which a strategy's
  mAP curve, linearly interpolated, first reaches a target (random's final
  mAP of the same seed); None when it never does within the protocol;
- :func:`curve_on_common_axis`: a curve read at given axis values (equal
  box budgets: strategies buy different numbers of boxes per frame).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def area_under_curve(axis: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` over ``axis`` (increasing) divided by the axis width.

    One point (no width) gives that point's value.
    """
    x, y = np.asarray(axis, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"axis {x.shape} and values {y.shape} must be the same non-empty (n,) curve")
    if np.any(np.diff(x) < 0):
        raise ValueError(f"the curve's axis must not decrease, got {x.tolist()}")
    width = x[-1] - x[0]
    if width == 0:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / width)


def t_interval_95(differences: Sequence[float]) -> tuple[float, float | None]:
    """``(mean, half-width)`` of the two-sided 95 % Student-t interval; half-width None for n < 2."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise ValueError("a paired difference needs at least one seed")
    if d.size < 2:
        return float(d.mean()), None
    return float(d.mean()), float(t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))


def paired_difference(values: dict[int, float], baseline: dict[int, float]) -> dict[str, object]:
    """``{"mean", "ci95": [low, high] | None, "seeds", "per_seed"}`` of ``values - baseline`` over
    the seeds both have (run seed -> value)."""
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        raise ValueError(f"no seed in common: strategy seeds {sorted(values)}, baseline seeds {sorted(baseline)}")
    d = [values[s] - baseline[s] for s in seeds]
    mean, half = t_interval_95(d)
    return {"mean": mean, "ci95": None if half is None else [mean - half, mean + half], "seeds": seeds,
            "per_seed": d}


def labels_to_parity(axis: Sequence[float], values: Sequence[float], target: float) -> float | None:
    """The first axis value (labeled frames or cost) where the linearly interpolated
    curve reaches ``target``; None when it stays below it."""
    x, y = np.asarray(axis, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"axis {x.shape} and values {y.shape} must be the same non-empty (n,) curve")
    if y[0] >= target:
        return float(x[0])
    for i in range(1, x.size):
        if y[i] >= target:
            return float(x[i - 1] + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))
    return None


def curve_on_common_axis(axis: Sequence[float], values: Sequence[float], at: Sequence[float]) -> np.ndarray:
    """The curve linearly interpolated at ``at`` (which must lie within the curve's axis range)."""
    x, y, q = (np.asarray(v, dtype=np.float64) for v in (axis, values, at))
    if q.size and (q.min() < x[0] - 1e-9 or q.max() > x[-1] + 1e-9):
        raise ValueError(f"points {q.tolist()} lie outside the curve's range [{x[0]}, {x[-1]}]")
    return np.interp(q, x, y)
