"""Vectorised parsing of mmdet3d info entries into a :class:`FrameBatch`.

The conventions (box frame and origin, class names, paths, timestamps,
sequences, splits) are those of :mod:`ceal_pipeline.frames.mmdet3d_info`, whose
helpers this module calls; what it adds is *how*: entries are processed a chunk
at a time and each field becomes one numpy array per chunk (boxes of every
instance at once, calibration of every image of one camera at once) instead of
one ``FrameRecord`` per frame. A chunk whose values do not convert as a whole
(a malformed matrix, a missing key) is re-parsed frame by frame, so the reasons a
frame is quarantined are exactly those of one frame read on its own, in the
same order: id, LiDAR file, cameras by name, instances.

Cameras are parsed by :mod:`.mmdet3d_cameras`; files named by many entries
(point clouds and images shared across frames) are checked once per path
(:class:`~ceal_pipeline.frames.file_checks.FileChecks`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from pathlib import Path

import numpy as np

from ceal_pipeline.frames import mmdet3d_info as info_format
from ceal_pipeline.frames.batch import FrameBatch, offsets_of
from ceal_pipeline.frames.box_conventions import camera_boxes_to_lidar, to_bottom_origin
from ceal_pipeline.frames.confinement import PathConfinement
from ceal_pipeline.frames.entry_checks import MAX_BOX_VALUE, out_of_range_boxes, singular_matrices
from ceal_pipeline.frames.entry_groups import RECOVERABLE, in_groups, stack_floats
from ceal_pipeline.frames.file_checks import FileChecks
from ceal_pipeline.frames.mmdet3d_cameras import parse_cameras
from ceal_pipeline.frames.mmdet3d_dialects import Dialect, detect_dialect
from ceal_pipeline.frames.records import QuarantinedFrame, invalid_id_message, is_valid_frame_id
from ceal_pipeline.frames.result import printable

_LABEL_3D, _BBOX_3D = itemgetter("bbox_label_3d"), itemgetter("bbox_3d")


@dataclass
class ParsedEntries:
    """One chunk of an info file: its readable frames and what was left out."""

    batch: FrameBatch
    quarantined: list[QuarantinedFrame] = field(default_factory=list)
    #: objects dropped by source type name (unmapped class, ``ignored (-1)``), as in ``FrameSourceResult``
    dropped_objects: Counter = field(default_factory=Counter)
    #: instances whose label has no class name in the info file (label value -> count)
    unnamed_labels: Counter = field(default_factory=Counter)


@dataclass
class InfoContext:
    """What every chunk of one info file shares (resolved once per file)."""

    info_path: Path
    root: Path
    metainfo: dict
    lidar_prefix: str | None = None
    camera_prefix: str | dict[str, str] | None = None
    box_frame: str | None = None
    box_origin_z: float | None = None
    camera_key: str | None = None
    frame_id_prefix: str = ""
    classes: tuple[str, ...] | None = None
    #: folders outside ``root`` that the info file's paths may name (configuration, not data)
    extra_roots: tuple[str, ...] = ()
    checks: FileChecks = field(default_factory=lambda: FileChecks("header"))
    #: the file's dialect (:func:`~ceal_pipeline.frames.mmdet3d_dialects.detect_dialect`); from the metainfo when None
    dialect: Dialect | None = None

    def __post_init__(self) -> None:
        camera_prefixes = (
            self.camera_prefix.values() if isinstance(self.camera_prefix, dict) else [self.camera_prefix])
        self.confinement = PathConfinement(self.root, [self.lidar_prefix, *camera_prefixes], self.extra_roots or ())
        self.dialect = self.dialect or detect_dialect(self.metainfo, [])
        self.frame_kind, self.origin_z, self.ref_camera = info_format.box_convention(
            self.metainfo, self.box_frame, self.box_origin_z, self.camera_key, self.dialect)
        self.class_names = info_format.class_names(self.metainfo, self.classes, self.dialect)
        self.dataset = info_format.dataset_name(self.metainfo, self.dialect)
        self.default_split = info_format.split_in_name(self.info_path)
        self._label_map: dict[int, int] = {}

    def detector_labels(self, raw: np.ndarray) -> np.ndarray:
        """Detector label per raw info label, -1 where the object is dropped."""
        values, inverse = np.unique(raw, return_inverse=True)
        for value in values.tolist():
            if value not in self._label_map:
                label = info_format.detector_label_of(value, self.class_names)
                self._label_map[value] = -1 if label is None else label
        return np.array([self._label_map[v] for v in values.tolist()], dtype=np.int64)[inverse]

    def dropped_name(self, raw_label: int) -> str:
        return "ignored (-1)" if raw_label < 0 else self.class_names.get(raw_label, f"label {raw_label}")


def _box_values(bboxes: list) -> np.ndarray:
    """``(k, 7)`` float64 from ``k`` ``bbox_3d`` values (extra values, e.g. velocities, cut off)."""
    try:
        array = stack_floats(bboxes, (7,))
        if array.ndim == 2 and array.shape[1] >= 7:
            values = array[:, :7]
        else:
            raise ValueError
    except (ValueError, TypeError):
        values = np.empty((len(bboxes), 7))
        for j, bbox in enumerate(bboxes):
            box = np.asarray(bbox, dtype=np.float64).reshape(-1)[:7]
            if box.size != 7:
                raise ValueError(f"malformed bbox_3d {bbox!r}") from None
            values[j] = box
    bad = ~np.isfinite(values).all(axis=1) | (values[:, 3:6] <= 0).any(axis=1) | out_of_range_boxes(values)
    if bad.any():
        raise ValueError(f"malformed bbox_3d {bboxes[int(np.flatnonzero(bad)[0])]!r} (a non-finite value, a "
                         f"size that is not positive, or a value beyond {MAX_BOX_VALUE:g})")
    return values


def _raw_labels(instances: list) -> np.ndarray:
    """``bbox_label_3d`` of every instance as int64; raises ``ValueError`` naming a bad one."""
    try:  # every instance has bbox_label_3d (v1.x converters): one C-level pass
        raw = np.fromiter(map(_LABEL_3D, instances), np.float64, count=len(instances))
    except (KeyError, TypeError, ValueError):
        for instance in instances:  # only when the fast path failed
            if not isinstance(instance, dict):
                raise ValueError(f"instance {instance!r} is not a dict with bbox_3d and bbox_label_3d") from None
        values = [instance.get("bbox_label_3d", instance.get("bbox_label", -1)) for instance in instances]
        try:
            raw = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"bbox_label_3d values {values[:5]!r} are not integer labels") from None
        if raw.ndim != 1:
            raise ValueError(f"bbox_label_3d values {values[:5]!r} are not integer labels") from None
    whole = np.isfinite(raw) & (raw == np.round(raw))
    if not whole.all():
        raise ValueError(f"bbox_label_3d {raw[~whole][0]!r} is not an integer label")
    return raw.astype(np.int64)


def _instances(ctx: InfoContext, entries: list[dict]):
    """Every instance of ``entries``: ``(counts per entry, raw labels, (k, 7) values as stored)``;
    values of dropped instances are left 0 and not validated, as the reader drops them first."""
    instances = [instance for entry in entries for instance in entry["instances"]]
    raw = _raw_labels(instances)
    labels = ctx.detector_labels(raw) if len(raw) else np.zeros(0, np.int64)
    kept = labels >= 0
    values = np.zeros((len(instances), 7))
    if kept.any():
        try:
            bboxes = list(map(_BBOX_3D, compress(instances, kept.tolist())))
        except KeyError:
            raise ValueError("an instance has a label but no bbox_3d") from None
        values[kept] = _box_values(bboxes)
    return np.array([len(entry["instances"]) for entry in entries], dtype=np.int64), raw, values


def _camera_frame_boxes(ctx: InfoContext, entries, frame_of, keep, values, reasons) -> None:
    """Camera-frame boxes (KITTI, older Waymo infos) -> LiDAR frame in place, frame by frame
    (each frame has its own calibration); frames lacking it get their reason."""
    for i in np.unique(frame_of[keep]).tolist():
        rows = np.flatnonzero((frame_of == i) & keep)
        image = (entries[i].get("images") or {}).get(ctx.ref_camera) or {}
        if "lidar2cam" not in image:
            reasons[i] = (f"camera-frame boxes need images.{ctx.ref_camera}.lidar2cam, which is missing", None)
            continue
        try:
            values[rows] = camera_boxes_to_lidar(values[rows], np.asarray(image["lidar2cam"]))
        except RECOVERABLE as exc:
            reasons[i] = (str(exc), None)


def parse_entries(entries: list[dict], first_index: int, ctx: InfoContext) -> ParsedEntries:
    """Frames of ``entries`` (``data_list[first_index:first_index + len(entries)]``)."""
    n = len(entries)
    reasons: list[tuple[str, str | None] | None] = [None] * n
    entries, frame_ids = _frame_ids(entries, first_index, ctx, reasons)

    lidar_infos = [entry.get("lidar_points") or {} for entry in entries]
    for i, info in enumerate(lidar_infos):
        if not isinstance(info, dict):
            if reasons[i] is None:
                reasons[i] = (f"lidar_points is a {type(info).__name__}, not a dict with lidar_path", None)
            lidar_infos[i] = {}
    lidar_rel = [info.get("lidar_path") for info in lidar_infos]
    lidar_paths = info_format.resolve_paths(ctx.root, ctx.lidar_prefix,
                                            [p if isinstance(p, (str, Path)) else "" for p in lidar_rel])
    num_features = np.zeros(n, dtype=np.int64)
    for i, info in enumerate(lidar_infos):
        if reasons[i] is not None:
            continue
        if not lidar_rel[i] or not isinstance(lidar_rel[i], (str, Path)):
            reasons[i] = (f"lidar_points.lidar_path is {lidar_rel[i]!r}, not a file path", None)
            continue
        reasons[i] = _num_features_problem(info.get("num_pts_feats", 4))
        if reasons[i] is not None:
            continue
        num_features[i] = int(info.get("num_pts_feats", 4))
        outside = ctx.confinement.problem(lidar_paths[i])
        reasons[i] = (outside, lidar_paths[i]) if outside else ctx.checks.lidar(lidar_paths[i], int(num_features[i]))

    cameras = parse_cameras(ctx, entries, lidar_infos, reasons)

    labeled = np.array(["instances" in entry for entry in entries], dtype=bool)
    for i in np.flatnonzero(labeled).tolist():
        if not isinstance(entries[i]["instances"], (list, tuple)) and reasons[i] is None:
            reasons[i] = (f"instances is a {type(entries[i]['instances']).__name__}, not a list of objects", None)
    timestamps = _timestamps(entries, lidar_infos, reasons)
    if ctx.dialect.missing_time_s is not None:
        timestamps[np.isnan(timestamps)] = ctx.dialect.missing_time_s
    poses = _poses([entry.get("ego2global") for entry in entries], reasons)
    ok_labeled, parsed = in_groups(lambda idx: _instances(ctx, [entries[i] for i in idx]),
                                    [i for i in range(n) if labeled[i] and reasons[i] is None], reasons)
    counts, raw, values = parsed if parsed else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 7)))
    frame_of = np.repeat(np.asarray(ok_labeled, dtype=np.int64), counts)
    keep = ctx.detector_labels(raw) >= 0 if len(raw) else np.zeros(0, dtype=bool)
    if ctx.frame_kind == "camera":
        _camera_frame_boxes(ctx, entries, frame_of, keep, values, reasons)
    else:
        values = to_bottom_origin(values, ctx.origin_z)

    good = np.array([r is None for r in reasons], dtype=bool)
    result = ParsedEntries(batch=FrameBatch())
    for i in np.flatnonzero(~good):
        message, path = reasons[i]
        result.quarantined.append(QuarantinedFrame(
            frame_id=frame_ids[i], reason=printable(f"{ctx.info_path.name} entry {first_index + i}: {message}"),
            path=printable(str(path if path is not None else ctx.info_path)), source=ctx.dataset))
    in_good = good[frame_of] if len(frame_of) else np.zeros(0, dtype=bool)
    dropped_values, dropped_counts = np.unique(raw[in_good & ~keep], return_counts=True)
    for value, count in zip(dropped_values.tolist(), dropped_counts.tolist()):
        result.dropped_objects[ctx.dropped_name(value)] += count
        if value >= 0 and value not in ctx.class_names:
            result.unnamed_labels[value] += count
    kept = in_good & keep
    box_counts = np.bincount(frame_of[kept], minlength=n).astype(np.int64)
    boxes, box_labels = values[kept], ctx.detector_labels(raw[kept]) if kept.any() else np.zeros(0, np.int64)

    keep_idx = np.flatnonzero(good)
    # a frame quarantined after its cameras were read (instances) leaves its camera rows behind
    cam_rows = np.flatnonzero(good[cameras["frame"]]) if len(cameras["frame"]) else np.zeros(0, np.int64)
    timestamps = timestamps[keep_idx]
    result.batch = FrameBatch(
        frame_id=[frame_ids[i] for i in keep_idx],
        sequence_id=[info_format.sequence_of(entries[i], lidar_rel[i], frame_ids[i], ctx.dialect) for i in keep_idx],
        timestamp=timestamps,
        split=[str(entries[i].get("split") or ctx.default_split) for i in keep_idx],
        source=[ctx.dataset] * len(keep_idx),
        lidar_path=[lidar_paths[i] for i in keep_idx],
        lidar_kind=["bin"] * len(keep_idx),
        lidar_num_features=num_features[keep_idx],
        lidar_use_dims=[(0, 1, 2, 3)] * len(keep_idx),
        ego_pose=poses[keep_idx],
        labeled=labeled[keep_idx],
        annotation=[f"{ctx.info_path}#{first_index + i}" if labeled[i] else "" for i in keep_idx],
        camera_offsets=offsets_of(np.diff(cameras["offsets"])[keep_idx]),
        camera_name=[cameras["name"][j] for j in cam_rows.tolist()],
        camera_path=[cameras["path"][j] for j in cam_rows.tolist()],
        camera_model=["pinhole"] * len(cam_rows),
        cam2img=cameras["cam2img"][cam_rows].reshape(-1, 3, 3),
        lidar2cam=cameras["lidar2cam"][cam_rows].reshape(-1, 4, 4),
        camera_width=cameras["width"][cam_rows],
        camera_height=cameras["height"][cam_rows],
        camera_distortion=[()] * len(cam_rows),
        box_offsets=offsets_of(box_counts[keep_idx]),
        boxes=boxes.astype(np.float32).reshape(-1, 7),
        labels=box_labels.astype(np.int64),
    )
    return result


def _frame_ids(entries: list, first_index: int, ctx: InfoContext, reasons: list) -> tuple[list[dict], list[str]]:
    """``(entries, frame ids)``: entries that are not dicts become ``{}`` (their reason
    set), ids are kept as written; a frame without a valid id is quarantined under
    its original id as shown by :func:`~ceal_pipeline.frames.records.shown_id`, or
    ``<info file>#<index>`` when it has none (neither can be a valid id)."""
    frame_ids = []
    clean = entries
    for i, entry in enumerate(entries):
        where = f"{ctx.info_path.name}#{first_index + i}"
        if not isinstance(entry, dict):
            reasons[i] = (f"the entry is a {type(entry).__name__}, not a dict", None)
            frame_ids.append(where)
            clean = clean if clean is not entries else list(entries)
            clean[i] = {}
            continue
        try:
            frame_id = info_format.frame_id_of(entry, first_index + i, ctx.frame_id_prefix)
        except ValueError as exc:
            reasons[i] = (str(exc), None)
            frame_ids.append(where)
            continue
        if not is_valid_frame_id(frame_id):
            reasons[i] = (invalid_id_message(frame_id), None)
            frame_id = ascii(frame_id)
        frame_ids.append(frame_id)
    return clean, frame_ids


def _num_features_problem(value) -> tuple[str, None] | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 3:
        return None
    return (f"lidar_points.num_pts_feats is {value!r}: a point needs at least x, y, z (an integer >= 3; "
            "nuScenes writes 5, KITTI 4)", None)


def _timestamps(entries: list, lidar_infos: list, reasons: list) -> np.ndarray:
    """Seconds per entry (NaN where none is given); entries with a timestamp that is
    not a time get their reason."""
    values = [entry.get("timestamp", info.get("timestamp")) for entry, info in zip(entries, lidar_infos)]
    try:
        return info_format.seconds_of(values)
    except ValueError:
        pass
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        try:
            out[i] = info_format.seconds_of([value])[0]
        except ValueError as exc:
            if reasons[i] is None:
                reasons[i] = (str(exc), None)
    return out


def _poses(poses: list, reasons: list) -> np.ndarray:
    """``(n, 4, 4)`` ego poses, NaN where an entry has none; an entry whose pose is
    not a finite 4x4 matrix gets its reason."""
    out = np.full((len(poses), 4, 4), np.nan)
    present = [i for i, pose in enumerate(poses) if pose is not None]
    if present:
        try:
            out[present] = stack_floats([poses[i] for i in present], (4, 4))
        except (ValueError, TypeError):
            for i in present:
                try:
                    out[i] = np.asarray(poses[i], dtype=np.float64).reshape(4, 4)
                except (ValueError, TypeError):
                    out[i] = np.inf  # reported below
        bad = singular_matrices(out[present])
        for i in np.asarray(present)[bad].tolist():
            if reasons[i] is None:
                reasons[i] = (f"ego2global {poses[i]!r} is not a finite 4x4 matrix, or is not invertible", None)
            out[i] = np.nan
    return out


def chunk_entries(data_list: list, chunk_size: int):
    """``(first_index, entries)`` slices of ``data_list``; processed entries are
    released from the list so that their Python objects are freed as the parse goes."""
    for start in range(0, len(data_list), chunk_size):
        chunk = data_list[start:start + chunk_size]
        data_list[start:start + chunk_size] = [None] * len(chunk)
        yield start, chunk


__all__ = ["FileChecks", "InfoContext", "ParsedEntries", "chunk_entries", "parse_entries"]
