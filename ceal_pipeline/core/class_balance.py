"""Class balance: how much the labeled set needs each class, and each frame's share of that need.

CRB (Luo et al., ICLR 2023) buys 3D detection labels "concisely" by preferring
frames whose likely content is rare in what is labeled. Here a class's *need*
grows when it is under-represented (few labeled boxes) and/or under-performing
(low AP in the last round's evaluation); a frame's weight is the need of the
objects it likely contains, averaged over them. Needs are normalised to mean 1,
so a frame with no expected objects (weight 1) and a frame of average classes
are treated alike, and uniform need changes nothing (weights exactly 1).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: Floor of ``1 - AP``: a class at AP 1 still has a small need, so frames holding
#: only that class stay ranked among themselves by their value.
MIN_PERFORMANCE_NEED = 0.05


def _mean_one(need: np.ndarray) -> np.ndarray:
    if np.ptp(need) == 0:  # uniform: exactly ones, so weights are exactly 1
        return np.ones_like(need)
    return need / need.mean()


def class_need(
    labeled_class_counts: Optional[np.ndarray],
    class_ap: Optional[np.ndarray],
    *,
    strength: float = 1.0,
) -> np.ndarray:
    """``(C,)`` need of each class, mean 1 (uniform need: exactly ones).

    Args:
        labeled_class_counts: ``(C,)`` labeled boxes per class. Need from counts is
            the uniform share over the class's smoothed share, ``(1/C) / ((n_c + 1) /
            (sum n + C))``: a class with half the average count is needed about twice.
        class_ap: ``(C,)`` last round's AP per class in [0, 1]; NaN where unknown
            (taken as the mean need of the known classes). Need from AP is
            ``max(1 - AP_c, MIN_PERFORMANCE_NEED)``.
        strength: exponent applied to the combined need; 0 makes every need 1.

    At least one of the two must be given; with both, their (mean-1) needs multiply.
    """
    if labeled_class_counts is None and class_ap is None:
        raise ValueError(
            "class balance needs labeled_class_counts (labeled boxes per class) and/or class_ap (last round's "
            "per-class AP); pass at least one, or use a method without class balance"
        )
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"class balance strength must be a finite number >= 0, got {strength!r}")
    parts = []
    if labeled_class_counts is not None:
        counts = np.asarray(labeled_class_counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0 or not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"labeled_class_counts must be (C,) finite counts >= 0, got {counts!r}")
        share = (counts + 1.0) / (counts.sum() + counts.size)
        parts.append(_mean_one(1.0 / (counts.size * share)))
    if class_ap is not None:
        ap = np.asarray(class_ap, dtype=np.float64)
        known = np.isfinite(ap)
        if ap.ndim != 1 or ap.size == 0 or (ap[known] < 0).any() or (ap[known] > 1).any():
            raise ValueError(f"class_ap must be (C,) APs in [0, 1] (NaN where unknown), got {ap!r}")
        need = np.ones_like(ap)
        if known.any():
            need[known] = np.maximum(1.0 - ap[known], MIN_PERFORMANCE_NEED)
            need[~known] = need[known].mean()
        parts.append(_mean_one(need))
    if len(parts) == 2 and parts[0].size != parts[1].size:
        raise ValueError(f"labeled_class_counts has {parts[0].size} classes but class_ap {parts[1].size}; "
                         "give both in the detector's class order")
    combined = parts[0] if len(parts) == 1 else parts[0] * parts[1]
    if strength == 0:
        return np.ones_like(combined)
    return _mean_one(_mean_one(combined) ** strength)


def frame_class_weights(class_counts: np.ndarray, need: np.ndarray) -> np.ndarray:
    """``(n,)`` each frame's class-balance weight: the need of its expected objects, averaged over them.

    ``class_counts`` ``(n, C)`` expected objects per class in each frame (>= 0);
    ``need`` ``(C,)`` from :func:`class_need`. A frame with no expected object
    gets weight 1 (the mean need): nothing is known about what it holds.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    need = np.asarray(need, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != need.size:
        raise ValueError(
            f"class_counts must be (n, C) with C={need.size} classes (the labeled counts' / APs' class order), "
            f"got {counts.shape}"
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("class_counts must be finite expected object counts >= 0")
    total = counts.sum(axis=1)
    if np.ptp(need) == 0:
        return np.ones(counts.shape[0])
    weighted = (counts * need).sum(axis=1)
    return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), 1.0)
