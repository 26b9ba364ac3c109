"""The one conversion between a vendor's cuboids and the pipeline's boxes.

Both exchange formats carry cuboids by their *centre* in the frame's LiDAR
coordinates: ASAM OpenLABEL's ``cuboid.val`` is ``x, y, z, qx, qy, qz, qw, sx,
sy, sz`` (centre, rotation quaternion, full sizes along the cuboid's own x, y,
z), and the mmdet3d info format's ``bbox_3d`` is ``x, y, z, l, w, h, yaw`` with
the gravity centre as origin (the nuScenes infos' convention). The pipeline
keeps the centre of the *bottom face* (:mod:`ceal_pipeline.frames.records`).

Each format's reader decodes its rotation to a yaw (OpenLABEL: the quaternion's
yaw about +z, as :mod:`ceal_pipeline.frames.box_conventions` does for aiMotive),
then :func:`vendor_boxes_to_pipeline` is the single step into the pipeline's
convention, and :func:`pipeline_boxes_to_vendor` its inverse for exports.
Class names are checked against the ontology here too, so a box that is NaN,
flat or of an unknown class never reaches the history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ceal_pipeline.frames.box_conventions import to_bottom_origin, to_centre_origin, wrap_angle
from ceal_pipeline.frames.entry_checks import MAX_BOX_VALUE, out_of_range_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES


class InvalidDeliveredBoxes(ValueError):
    """Boxes a vendor delivered that the pipeline cannot use (NaN, zero size, unknown class)."""


def vendor_boxes_to_pipeline(
    centre_boxes: np.ndarray, class_names: Sequence[str], *, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(n, 7)`` centre-origin ``x y z l w h yaw`` boxes (LiDAR frame, metres, rad) and
    their class names -> ``(boxes (n, 7) float64 bottom-centre, class names)``.

    ``where`` names the file and frame in errors. Raises
    :class:`InvalidDeliveredBoxes` for a non-finite value, a value beyond
    :data:`~ceal_pipeline.frames.entry_checks.MAX_BOX_VALUE`, a size that is not
    positive, or a class name outside :data:`DETECTION_CLASSES`.
    """
    boxes = np.asarray(centre_boxes, dtype=np.float64).reshape(-1, 7)
    names = tuple(str(c) for c in class_names)
    if len(names) != len(boxes):
        raise InvalidDeliveredBoxes(f"{where}: {len(boxes)} boxes but {len(names)} class names")
    bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
    if len(bad):
        raise InvalidDeliveredBoxes(
            f"{where}: box {int(bad[0])} has a NaN or infinite value ({boxes[bad[0]].tolist()}); "
            "ask the vendor to fix the cuboid"
        )
    far = np.flatnonzero(out_of_range_boxes(boxes))
    if len(far):
        raise InvalidDeliveredBoxes(
            f"{where}: box {int(far[0])} has a value beyond {MAX_BOX_VALUE:g} ({boxes[far[0]].tolist()}; metres and "
            "radians): no cuboid of a LiDAR frame is that large or that far; ask the vendor to fix the cuboid"
        )
    flat = np.flatnonzero((boxes[:, 3:6] <= 0).any(axis=1))
    if len(flat):
        raise InvalidDeliveredBoxes(
            f"{where}: box {int(flat[0])} has a zero or negative size {boxes[flat[0], 3:6].tolist()} (l, w, h in m); "
            "ask the vendor to fix the cuboid"
        )
    unknown = sorted({n for n in names if n not in DETECTION_CLASSES})
    if unknown:
        raise InvalidDeliveredBoxes(
            f"{where}: unknown class names {unknown}; the ontology has {list(DETECTION_CLASSES)} "
            "(see project.json): ask the vendor to map them"
        )
    out = to_bottom_origin(boxes, origin_z=0.5)
    out[:, 6] = wrap_angle(out[:, 6])
    return out, names


def pipeline_boxes_to_vendor(boxes: np.ndarray) -> np.ndarray:
    """Pipeline boxes (bottom-centre) -> ``(n, 7)`` centre-origin ``x y z l w h yaw`` float64."""
    return to_centre_origin(boxes)


def class_names_of(labels: np.ndarray, class_names: Sequence[str] = DETECTION_CLASSES) -> tuple[str, ...]:
    """Label indices -> class names."""
    return tuple(str(class_names[int(i)]) for i in np.asarray(labels).reshape(-1))


def labels_of(class_names: Sequence[str]) -> np.ndarray:
    """Class names (of :data:`DETECTION_CLASSES`) -> ``(n,)`` int64 label indices."""
    return np.asarray([DETECTION_CLASSES.index(c) for c in class_names], dtype=np.int64)


def with_delivered_labels(records: Sequence, delivered: dict) -> list:
    """``records`` (FrameRecords) with the vendor's boxes in place of the source's wherever a
    frame was delivered (``delivered``: frame id -> (``core.boxes.Boxes``, class names)); the others unchanged.
    The detector trains on what the vendor delivered, not on what the source happens to hold."""
    from dataclasses import replace

    out = []
    for record in records:
        if record.frame_id in delivered:
            boxes, names = delivered[record.frame_id]
            record = replace(record, boxes=np.asarray(boxes.values, np.float32), labels=labels_of(names),
                             class_names=DETECTION_CLASSES)
        out.append(record)
    return out
