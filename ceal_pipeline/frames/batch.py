"""Frames as columns: what the vectorised readers produce and the catalog stores.

A :class:`FrameBatch` holds ``n`` frames as numpy arrays and flat lists instead
of ``n`` :class:`~ceal_pipeline.frames.records.FrameRecord` objects, so that a
million frames cost a few arrays, not a few hundred million Python objects.
Variable-length parts (cameras, boxes) are flat arrays with ``n + 1`` offsets:
the cameras of frame ``i`` are rows ``camera_offsets[i]:camera_offsets[i + 1]``.

:meth:`FrameBatch.records` and :func:`batch_from_records` convert to and from
records; a round trip is exact (float32 boxes, float64 calibration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ceal_pipeline.frames.records import DETECTION_CLASSES, CameraRecord, FrameRecord, LidarFormat


def offsets_of(counts) -> np.ndarray:
    """``(n + 1,)`` int64 offsets of consecutive groups of ``counts`` rows."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
    return offsets


def rows_of(offsets: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Flat row indices of the groups ``selected`` (in that order) given ``offsets``."""
    starts, ends = offsets[selected], offsets[np.asarray(selected) + 1]
    counts = ends - starts
    if counts.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    # arange over every group at once: each row is its group's start plus its rank in the group
    group_start = np.repeat(starts - offsets_of(counts)[:-1], counts)
    return group_start + np.arange(int(counts.sum()), dtype=np.int64)


@dataclass
class FrameBatch:
    """``n`` frames as columns (see the module docstring for the offsets).

    Per frame: ``frame_id``, ``sequence_id``, ``split``, ``source``,
    ``lidar_path``, ``lidar_kind`` (lists of str), ``timestamp`` (s, float64),
    ``lidar_num_features`` (int64), ``lidar_use_dims`` (list of tuples),
    ``ego_pose`` (``(n, 4, 4)`` ego-to-global, NaN where the source has none),
    ``labeled`` (bool), ``annotation`` (where the frame's labels come from:
    ``<info file>#<entry>`` or the box file).
    Per camera (``camera_offsets``): ``camera_name``, ``camera_path``,
    ``camera_model`` (lists), ``cam2img`` ``(m, 3, 3)``, ``lidar2cam`` ``(m, 4, 4)``,
    ``camera_width``/``camera_height`` (int64), ``camera_distortion`` (tuples).
    Per box (``box_offsets``): ``boxes`` ``(k, 7)`` float32 in the records'
    convention and ``labels`` ``(k,)`` int64 into ``DETECTION_CLASSES``.
    """

    frame_id: list[str] = field(default_factory=list)
    sequence_id: list[str] = field(default_factory=list)
    timestamp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    split: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    lidar_path: list[str] = field(default_factory=list)
    lidar_kind: list[str] = field(default_factory=list)
    lidar_num_features: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lidar_use_dims: list[tuple[int, ...]] = field(default_factory=list)
    ego_pose: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    labeled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    annotation: list[str] = field(default_factory=list)
    camera_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    camera_name: list[str] = field(default_factory=list)
    camera_path: list[str] = field(default_factory=list)
    camera_model: list[str] = field(default_factory=list)
    cam2img: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    lidar2cam: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    camera_width: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    camera_height: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    camera_distortion: list[tuple[float, ...]] = field(default_factory=list)
    box_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), dtype=np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.frame_id)

    @property
    def box_counts(self) -> np.ndarray:
        return np.diff(self.box_offsets)

    def take(self, indices) -> "FrameBatch":
        """The frames at ``indices`` (in that order) as a new batch."""
        idx = np.asarray(indices, dtype=np.int64)
        cam_rows, box_rows = rows_of(self.camera_offsets, idx), rows_of(self.box_offsets, idx)

        def pick(values: list) -> list:
            return [values[i] for i in idx]

        def pick_rows(values: list) -> list:
            return [values[i] for i in cam_rows]

        return FrameBatch(
            frame_id=pick(self.frame_id), sequence_id=pick(self.sequence_id), timestamp=self.timestamp[idx],
            split=pick(self.split), source=pick(self.source), lidar_path=pick(self.lidar_path),
            lidar_kind=pick(self.lidar_kind), lidar_num_features=self.lidar_num_features[idx],
            lidar_use_dims=pick(self.lidar_use_dims), ego_pose=self.ego_pose[idx], labeled=self.labeled[idx],
            annotation=pick(self.annotation),
            camera_offsets=offsets_of(np.diff(self.camera_offsets)[idx]), camera_name=pick_rows(self.camera_name),
            camera_path=pick_rows(self.camera_path), camera_model=pick_rows(self.camera_model),
            cam2img=self.cam2img[cam_rows], lidar2cam=self.lidar2cam[cam_rows],
            camera_width=self.camera_width[cam_rows], camera_height=self.camera_height[cam_rows],
            camera_distortion=pick_rows(self.camera_distortion),
            box_offsets=offsets_of(self.box_counts[idx]), boxes=self.boxes[box_rows], labels=self.labels[box_rows],
        )

    def records(self) -> list[FrameRecord]:
        """One :class:`FrameRecord` per frame, in batch order."""
        formats: dict[tuple, LidarFormat] = {}
        records = []
        co, bo = self.camera_offsets, self.box_offsets
        for i, frame_id in enumerate(self.frame_id):
            key = (self.lidar_kind[i], int(self.lidar_num_features[i]), tuple(self.lidar_use_dims[i]))
            lidar_format = formats.get(key) or formats.setdefault(key, LidarFormat(*key))
            cameras = tuple(
                CameraRecord(name=self.camera_name[j], path=self.camera_path[j], cam2img=self.cam2img[j],
                             lidar2cam=self.lidar2cam[j], width=int(self.camera_width[j]),
                             height=int(self.camera_height[j]), model=self.camera_model[j],
                             distortion=tuple(self.camera_distortion[j]))
                for j in range(co[i], co[i + 1])
            )
            pose = self.ego_pose[i]
            boxes = labels = None
            if self.labeled[i]:
                boxes, labels = self.boxes[bo[i]:bo[i + 1]], self.labels[bo[i]:bo[i + 1]]
            records.append(FrameRecord(
                frame_id=frame_id, sequence_id=self.sequence_id[i], timestamp=float(self.timestamp[i]),
                lidar_path=self.lidar_path[i], lidar_format=lidar_format, cameras=cameras, boxes=boxes,
                labels=labels, class_names=DETECTION_CLASSES, source=self.source[i], split=self.split[i],
                ego_pose=None if np.isnan(pose[0, 0]) else pose,
            ))
        return records


def concat_batches(batches: list[FrameBatch]) -> FrameBatch:
    """The frames of ``batches`` one after another."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return FrameBatch()
    if len(batches) == 1:
        return batches[0]

    def joined(name: str) -> list:
        return [v for b in batches for v in getattr(b, name)]

    def stacked(name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches])

    return FrameBatch(
        **{name: joined(name) for name in ("frame_id", "sequence_id", "split", "source", "lidar_path", "lidar_kind",
                                           "lidar_use_dims", "annotation", "camera_name", "camera_path",
                                           "camera_model", "camera_distortion")},
        **{name: stacked(name) for name in ("timestamp", "lidar_num_features", "ego_pose", "labeled", "cam2img",
                                            "lidar2cam", "camera_width", "camera_height", "boxes", "labels")},
        camera_offsets=offsets_of(np.concatenate([np.diff(b.camera_offsets) for b in batches])),
        box_offsets=offsets_of(np.concatenate([b.box_counts for b in batches])),
    )


def batch_from_records(records: list[FrameRecord], annotations: list[str] | None = None) -> FrameBatch:
    """The columns of ``records`` (e.g. from a per-frame reader such as aiMotive's).

    ``annotations`` names each frame's label source (default: empty strings).
    """
    n = len(records)
    cameras = [c for r in records for c in r.cameras]
    boxes = [r.boxes for r in records if r.is_labeled]
    labels = [r.labels for r in records if r.is_labeled]
    return FrameBatch(
        frame_id=[r.frame_id for r in records], sequence_id=[r.sequence_id for r in records],
        timestamp=np.array([r.timestamp for r in records], dtype=np.float64), split=[r.split for r in records],
        source=[r.source for r in records], lidar_path=[str(r.lidar_path) for r in records],
        lidar_kind=[r.lidar_format.kind for r in records],
        lidar_num_features=np.array([r.lidar_format.num_features for r in records], dtype=np.int64),
        lidar_use_dims=[tuple(int(d) for d in r.lidar_format.use_dims) for r in records],
        ego_pose=np.stack([np.full((4, 4), np.nan) if r.ego_pose is None else np.asarray(r.ego_pose, np.float64)
                           for r in records]) if n else np.zeros((0, 4, 4)),
        labeled=np.array([r.is_labeled for r in records], dtype=bool),
        annotation=list(annotations) if annotations is not None else [""] * n,
        camera_offsets=offsets_of([len(r.cameras) for r in records]),
        camera_name=[c.name for c in cameras], camera_path=[str(c.path) for c in cameras],
        camera_model=[c.model for c in cameras],
        cam2img=np.array([c.cam2img for c in cameras], dtype=np.float64).reshape(-1, 3, 3),
        lidar2cam=np.array([c.lidar2cam for c in cameras], dtype=np.float64).reshape(-1, 4, 4),
        camera_width=np.array([c.width for c in cameras], dtype=np.int64),
        camera_height=np.array([c.height for c in cameras], dtype=np.int64),
        camera_distortion=[tuple(float(v) for v in c.distortion) for c in cameras],
        box_offsets=offsets_of([len(r.boxes) if r.is_labeled else 0 for r in records]),
        boxes=np.concatenate(boxes).astype(np.float32).reshape(-1, 7) if boxes else np.zeros((0, 7), np.float32),
        labels=np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
    )
