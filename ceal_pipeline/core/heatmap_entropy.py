"""Heatmap entropy: how unsure the detection head is whether an object is centred at a BEV cell.

Inputs are the head's sigmoid heatmap as ``(T, B, C, H, W)`` probabilities (MC
samples, frames, classes, grid rows, grid columns; ``T = 1`` for the deterministic
heatmap). A cell's entropy is the sum of its classes' binary entropies (nats, in
``[0, C log 2]``); a frame's is the mean of its ``top_k`` most uncertain cells.
Why top-k, and why the heatmap carries no dropout: docs/ACQUISITION.md.
"""

from __future__ import annotations

import numpy as np

from ceal_pipeline.core.acquisition import PROBABILITY_TOLERANCE, neg_xlogx

#: Cells per frame whose entropies are averaged (why 64: docs/ACQUISITION.md).
HEATMAP_TOP_K = 64


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Element-wise entropy in nats of a Bernoulli variable with probability ``p``.

    0 at ``p = 0`` and ``p = 1``, ``log 2`` at ``p = 0.5``, symmetric about 0.5.
    """
    p = np.asarray(p, dtype=np.float64)
    return neg_xlogx(p) + neg_xlogx(1.0 - p)


def validate_heatmap_probabilities(heatmap_probs: np.ndarray, name: str = "heatmap_probs") -> np.ndarray:
    """Return ``heatmap_probs`` as float64 ``(T, B, C, H, W)`` or raise, naming the first bad entry.

    The entries must be sigmoid outputs in ``[0, 1]`` (not logits); unlike a
    softmax they need not sum to 1 over classes.
    """
    heatmap_probs = np.asarray(heatmap_probs, dtype=np.float64)
    if heatmap_probs.ndim != 5:
        raise ValueError(
            f"{name} must be (T, B, C, H, W) = (MC samples, frames, classes, rows, columns), got shape "
            f"{heatmap_probs.shape}; add a leading axis of size 1 for a deterministic heatmap"
        )
    if heatmap_probs.shape[0] < 1:
        raise ValueError(f"{name} has T=0 MC samples; run at least one forward pass")
    bad = ~np.isfinite(heatmap_probs) | (heatmap_probs < 0.0) | (heatmap_probs > 1.0 + PROBABILITY_TOLERANCE)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}[{', '.join(map(str, index))}] = {heatmap_probs[index]!r} (sample, frame, class, row, column) "
            "is not a probability; apply the sigmoid to the heatmap logits first"
        )
    return np.minimum(heatmap_probs, 1.0)


def heatmap_cell_entropy(heatmap_probs: np.ndarray) -> np.ndarray:
    """Entropy in nats of every cell of every frame, ``(B, H * W)``.

    ``heatmap_probs`` is ``(T, B, C, H, W)`` sigmoid probabilities; the value of a
    cell is ``sum_c h(mean_t p[t, b, c, y, x])``, in ``[0, C log 2]``. Cells are
    flattened row-major (``y * W + x``), as the head's peaks index them.
    """
    heatmap_probs = validate_heatmap_probabilities(heatmap_probs)
    _, batch, _, height, width = heatmap_probs.shape
    return binary_entropy(heatmap_probs.mean(axis=0)).sum(axis=1).reshape(batch, height * width)


def top_k_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest values of each row of ``values`` ``(B, N)`` -> ``(B,)``.

    ``k`` larger than ``N`` averages the whole row. The selected values are
    sorted into a contiguous array before summing (numpy's summation order
    depends on the memory layout), so the result does not depend on the order
    of the columns even in the last bit.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"values must be (B, N) with N >= 1 cells, got shape {values.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k must be a positive int (cells per frame), got {k!r}")
    n = values.shape[1]
    k = min(int(k), n)
    largest = np.ascontiguousarray(np.sort(np.partition(values, n - k, axis=1)[:, n - k :], axis=1))
    return largest.mean(axis=1)


def heatmap_entropy(heatmap_probs: np.ndarray, top_k: int = HEATMAP_TOP_K) -> np.ndarray:
    """Heatmap entropy of each frame in nats per cell, ``(B,)``.

    The mean over the ``top_k`` most uncertain cells of :func:`heatmap_cell_entropy`;
    ``heatmap_probs`` is ``(T, B, C, H, W)``. Defined for every frame, with or
    without detections: a frame where the detector reports nothing but hesitates
    scores high, a frame of confident background scores near 0.
    """
    return top_k_mean(heatmap_cell_entropy(heatmap_probs), top_k)
