"""Does a frame's acquisition value track how wrong the detector is on it?

For one trained detector (the run seed's round-0 model, shared by every
strategy) and the held-out frames, the Spearman rank correlation between each
frame's acquisition value and its detection error: missed plus false boxes at
a BEV centre distance of ``threshold_m`` (2 m), counting predictions of
confidence ``>= min_confidence``
(:func:`ceal_pipeline.core.detection_metrics.frame_detection_errors`). A
positive value means the function ranks the frames the detector gets wrong
first, which is what an acquisition function is for.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def spearman(values: np.ndarray, errors: np.ndarray) -> float | None:
    """Spearman's rank correlation of two ``(N,)`` arrays (ties get average ranks);
    None when it is undefined (fewer than 3 frames, or either side constant)."""
    from scipy.stats import spearmanr

    values, errors = np.asarray(values, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if values.shape != errors.shape or values.ndim != 1:
        raise ValueError(f"acquisition values {values.shape} and errors {errors.shape} must both be (N,)")
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(errors) == 0:
        return None
    rho = float(spearmanr(values, errors).statistic)
    return None if math.isnan(rho) else rho


def score_error_correlations(scores_by_fn: Mapping[str, np.ndarray], errors: np.ndarray) -> dict[str, float | None]:
    """``{acquisition function: Spearman rho of its values against the per-frame errors}``."""
    return {name: spearman(values, errors) for name, values in scores_by_fn.items()}
