"""Which points lie in which box, as a mask: the tests' view of the product's inside test.

The product only ever counts (:func:`ceal_pipeline.frames.points_in_boxes.count_points_in_boxes`);
the mask is built from the same per-box candidates, so the tests check the one inside test.
"""

from __future__ import annotations

import numpy as np

from ceal_pipeline.frames.points_in_boxes import _candidates, _validated


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boolean ``(P, K)`` mask: point ``p`` lies in box ``k`` (bottom-centre ``x y z l w h yaw`` boxes)."""
    points, boxes = _validated(points, boxes)
    mask = np.zeros((len(points), len(boxes)), dtype=bool)
    if len(points) and len(boxes):
        for k, idx, inside in _candidates(points, boxes):
            mask[idx[inside], k] = True
    return mask
