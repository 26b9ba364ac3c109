"""Which LiDAR points fall inside which rotated 3D boxes (numpy, no torch).

Same test as mmcv's ``points_in_boxes_cpu``: a point is inside a bottom-centre
box ``x y z l w h yaw`` when, in the box's own frame, ``|local_x| < l/2``,
``|local_y| < w/2`` and ``z`` is within ``[z, z + h]``. Kept here so that
``frames/`` works without torch and mmcv.

Points are sorted by x once and each box only examines the slice of points
within its bounding circle's x-extent, so the cost is ``O(P log P)`` plus the
points near boxes, instead of ``P x K`` for every pair.
"""

from __future__ import annotations

import numpy as np


def _candidates(points: np.ndarray, boxes: np.ndarray):
    """Yield ``(box index, point indices, inside mask)`` for boxes with nearby points."""
    x = np.ascontiguousarray(points[:, 0], dtype=np.float64)
    order = np.argsort(x, kind="stable")
    x_sorted = x[order]
    radius = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    lows = np.searchsorted(x_sorted, boxes[:, 0] - radius, side="left")
    highs = np.searchsorted(x_sorted, boxes[:, 0] + radius, side="right")
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    for k in range(len(boxes)):
        if highs[k] <= lows[k]:
            continue
        idx = order[lows[k] : highs[k]]
        near = points[idx, :3].astype(np.float64)
        dx, dy = near[:, 0] - boxes[k, 0], near[:, 1] - boxes[k, 1]
        # Rotate the offset by -yaw into the box frame.
        local_x = dx * cos[k] + dy * sin[k]
        local_y = -dx * sin[k] + dy * cos[k]
        inside = (
            (np.abs(local_x) < boxes[k, 3] / 2.0)
            & (np.abs(local_y) < boxes[k, 4] / 2.0)
            & (np.abs(near[:, 2] - (boxes[k, 2] + boxes[k, 5] / 2.0)) <= boxes[k, 5] / 2.0)
        )
        yield k, idx, inside


def _validated(points: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (P, >=3) x, y, z...; got {points.shape}")
    return points, boxes


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(K,)`` int64 number of points inside each box.

    ``points`` is ``(P, >=3)`` (x, y, z in metres, LiDAR frame; extra columns are
    ignored), ``boxes`` is ``(K, 7)`` bottom-centre ``x y z l w h yaw``.
    """
    points, boxes = _validated(points, boxes)
    counts = np.zeros(len(boxes), dtype=np.int64)
    if len(points) and len(boxes):
        for k, _, inside in _candidates(points, boxes):
            counts[k] = int(inside.sum())
    return counts
