"""One labeling task per exported frame: what a vendor needs to label it.

A :class:`FrameTask` is the catalog's :class:`FrameRecord` (sequence, timestamp,
calibration, ego pose) with its sensor files as URIs (:mod:`.sensor_uris`) and,
optionally, the detector's boxes as pre-labels. The formats (project JSON,
OpenLABEL, mmdet3d infos) are renderings of the same tasks. The task's external
id is the frame id, so a vendor can de-duplicate and a delivery names frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.export.sensor_uris import SensorUriRule
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor
from ceal_pipeline.frames.records import CameraRecord, FrameRecord


@dataclass(frozen=True)
class PreLabels:
    """The detector's boxes for one frame: ``boxes (n, 7)`` in the pipeline's convention
    (bottom centre), their class names and confidences in [0, 1]."""

    boxes: np.ndarray
    class_names: tuple[str, ...]
    scores: np.ndarray

    def __post_init__(self) -> None:
        if len(self.boxes) != len(self.class_names) or len(self.boxes) != len(self.scores):
            raise ValueError(f"pre-labels: {len(self.boxes)} boxes, {len(self.class_names)} classes and "
                             f"{len(self.scores)} scores must be as many")


@dataclass(frozen=True)
class FrameTask:
    """One frame to label (see the module docstring)."""

    record: FrameRecord
    lidar_uri: str
    camera_uris: tuple[str, ...]
    pre_labels: PreLabels | None = None

    @property
    def external_id(self) -> str:
        return self.record.frame_id

    @property
    def timestamp(self) -> float | None:
        """Seconds, or None where the source has no time (never NaN in a file)."""
        t = float(self.record.timestamp)
        return t if math.isfinite(t) else None

    @property
    def timestamp_ns(self) -> int | None:
        """Nanoseconds (the tools' unit), to the microsecond: a float64 of seconds since 1970 holds
        no finer digit than about 0.2 us, so the sub-microsecond digits would be noise."""
        t = self.timestamp
        return None if t is None else int(round(t * 1e6)) * 1000

    @property
    def ego_pose(self) -> np.ndarray | None:
        """The 4x4 ego-to-world pose, or None where the source has none."""
        pose = self.record.ego_pose
        return None if pose is None or not np.isfinite(np.asarray(pose)).all() else np.asarray(pose, np.float64)


def frame_tasks(
    records: Sequence[FrameRecord], uris: SensorUriRule, pre_labels: Mapping[str, PreLabels] | None = None
) -> list[FrameTask]:
    """The tasks of ``records`` (in order), sensor paths mapped by ``uris``."""
    pre_labels = pre_labels or {}
    return [
        FrameTask(
            record=r,
            lidar_uri=uris.uri(r.lidar_path),
            camera_uris=tuple(uris.uri(c.path) for c in r.cameras),
            pre_labels=pre_labels.get(r.frame_id),
        )
        for r in records
    ]


def _matrix(values: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(values, dtype=np.float64)]


def camera_json(camera: CameraRecord, uri: str) -> dict:
    """A camera as the project manifest states it: URI, lens model, intrinsics, extrinsics."""
    return {
        "name": camera.name,
        "uri": uri,
        "lens_model": camera.model,
        "distortion": [float(d) for d in camera.distortion],
        "cam2img": _matrix(camera.cam2img),
        "lidar2cam": _matrix(camera.lidar2cam),
        "width": int(camera.width),
        "height": int(camera.height),
    }


def task_json(task: FrameTask) -> dict:
    """The task in the project's own format (one line of ``tasks.jsonl``)."""
    record = task.record
    pre = None
    if task.pre_labels is not None:
        centre = pipeline_boxes_to_vendor(task.pre_labels.boxes)
        pre = [
            {"class": name, "bbox_3d": [float(v) for v in box], "score": float(score)}
            for box, name, score in zip(centre, task.pre_labels.class_names, task.pre_labels.scores)
        ]
    pose = task.ego_pose
    return {
        "external_id": task.external_id,
        "sequence_id": record.sequence_id,
        "timestamp_s": task.timestamp,
        "lidar": {
            "uri": task.lidar_uri,
            "format": record.lidar_format.kind,
            "num_features": int(record.lidar_format.num_features),
        },
        "cameras": [camera_json(c, u) for c, u in zip(record.cameras, task.camera_uris)],
        "ego_pose": None if pose is None else _matrix(pose),
        "pre_labels": pre,
    }
