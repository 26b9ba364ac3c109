"""Frames from mmdet3d v1.x info files (``{'metainfo', 'data_list'}``).

This is what mmdet3d's own preparation scripts write for nuScenes, KITTI, Waymo
and Lyft, and what the synthetic generator writes, so one reader covers them.
Per entry it reads ``token``/``sample_idx`` (frame id), ``timestamp``,
``lidar_points.{lidar_path, num_pts_feats}``, ``images.<CAM>.{img_path, cam2img,
lidar2cam | cam2ego}`` and ``instances[j].{bbox_3d, bbox_label_3d}``.

Box conventions differ by dataset and are resolved once per file
(:func:`box_convention`), overridable with ``box_frame``/``box_origin_z``:

============================  ===========  =================  ==========================
``metainfo['dataset']``       frame        origin (z)         why
============================  ===========  =================  ==========================
nuscenes, lyft                LiDAR        centre (0.5)       their converters store centres
kitti                         camera CAM2  bottom             ``KittiDataset`` converts with inv(lidar2cam)
waymo, info_version 1.1       camera       bottom             written by ``update_infos_to_v2``
waymo, ``mmdet3d_v1.4``       LiDAR        bottom             new converter saves bottom centres
ceal-synthetic, others        LiDAR        bottom             mmdet3d's LiDARInstance3DBoxes default
============================  ===========  =================  ==========================

Instances with label ``-1`` (ignored classes) are dropped, as mmdet3d does; the
other labels go through :data:`ceal_pipeline.frames.classes.CLASS_MAPPING`.
Paths resolve against ``root`` joined with ``lidar_prefix`` / ``camera_prefix``
(mmdet3d's ``data_prefix``); absolute paths are used as they are.
Timestamps in micro- or nanoseconds (Waymo) are converted to seconds; a missing
timestamp (KITTI) reads as NaN. The sequence is ``scene_token``,
``sequence_id`` or ``context_name`` when present, else the nuScenes-style log
name before ``__`` in the LiDAR file name, else the frame itself.

Info files are pickles: read only files you trust, as with mmdet3d itself.
"""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path, PurePath

import numpy as np

from ceal_pipeline.frames.box_conventions import camera_boxes_to_lidar, to_bottom_origin
from ceal_pipeline.frames.classes import detection_label
from ceal_pipeline.frames.points import LidarReadError, check_bin_file, read_bin_points
from ceal_pipeline.frames.records import CameraRecord, FrameRecord, LidarFormat, validate_frame_id
from ceal_pipeline.frames.result import FrameSourceResult

SOURCE = "mmdet3d"
CHECK_LEVELS = ("exists", "header", "points")

#: Class tuples of mmdet3d's dataset classes, for info files without ``categories``.
KNOWN_CLASSES: dict[str, tuple[str, ...]] = {
    "kitti": ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc"),
    "waymo": ("Car", "Pedestrian", "Cyclist"),
    "nuscenes": ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                 "pedestrian", "traffic_cone", "barrier"),
    "lyft": ("car", "truck", "bus", "emergency_vehicle", "other_vehicle", "motorcycle", "bicycle",
             "pedestrian", "animal"),
}

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._:+\-]")
_SPLIT_IN_NAME = re.compile(r"(?:^|[_\-.])(train|val|test|trainval)(?:[_\-.]|$)")


class InfoFileError(ValueError):
    """An info file that is not an mmdet3d v1.x ``{'metainfo', 'data_list'}`` file."""


class _FileProblem(OSError):
    """A file an entry names is missing or unreadable; ``path`` is that file."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def load_info_file(path: str | Path) -> dict:
    """The ``{'metainfo', 'data_list'}`` dict of a ``.pkl`` (or ``.json``) info file."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            info = json.loads(path.read_text())
        else:
            with open(path, "rb") as handle:
                info = pickle.load(handle)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise InfoFileError(f"info file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if isinstance(info, list) or not isinstance(info, dict) or "data_list" not in info:
        raise InfoFileError(
            f"info file {path} is not an mmdet3d v1.x info file (no 'data_list'); convert old infos with "
            "mmdet3d's tools/dataset_converters/update_infos_to_v2.py"
        )
    info.setdefault("metainfo", {})
    return info


def find_info_files(root: str | Path, info: str | Path | None = None) -> list[Path]:
    """The info file(s) to read: ``info`` (absolute, or relative to ``root``), else
    every ``*.pkl`` directly in ``root``."""
    root = Path(root)
    if info is not None:
        path = Path(info) if Path(info).is_absolute() else root / info
        if not path.is_file():
            raise FileNotFoundError(f"info file {path} does not exist (pass --info relative to --root, or absolute)")
        return [path]
    files = sorted(root.glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"no *.pkl info file in {root}: pass the info file with info=/--info")
    return files


def box_convention(metainfo: dict, box_frame: str | None = None, box_origin_z: float | None = None,
                   camera_key: str | None = None) -> tuple[str, float, str | None]:
    """``(frame, origin_z, camera_key)`` for an info file: frame ``"lidar"`` or
    ``"camera"``, the box origin's relative height (0 bottom, 0.5 centre) and the
    camera whose ``lidar2cam`` defines camera-frame boxes."""
    dataset = str(metainfo.get("dataset", "")).lower()
    frame, origin, key = str(metainfo.get("box_frame", "lidar")), float(metainfo.get("box_origin_z", 0.0)), None
    if dataset in ("nuscenes", "lyft"):
        frame, origin = "lidar", 0.5
    elif dataset == "kitti":
        frame, origin, key = "camera", 0.0, "CAM2"
    elif dataset == "waymo" and str(metainfo.get("info_version", "")) != "mmdet3d_v1.4":
        frame, origin, key = "camera", 0.0, "CAM_FRONT"
    frame = box_frame or frame
    if frame not in ("lidar", "camera"):
        raise ValueError(f"box_frame={frame!r}: use 'lidar' or 'camera'")
    return frame, origin if box_origin_z is None else float(box_origin_z), camera_key or key


def _class_names(metainfo: dict) -> dict[int, str]:
    categories = metainfo.get("categories")
    if isinstance(categories, dict) and categories:
        return {int(v): str(k) for k, v in categories.items() if int(v) >= 0}
    classes = metainfo.get("classes") or KNOWN_CLASSES.get(str(metainfo.get("dataset", "")).lower(), ())
    return dict(enumerate(classes))


def _seconds(value) -> float:
    if value is None:
        return float("nan")
    t = float(value)
    # Epoch seconds are ~1.7e9; Waymo stores microseconds (~1e15), some exports nanoseconds.
    if t > 1e17:
        return t * 1e-9
    if t > 1e14:
        return t * 1e-6
    return t


def _resolve(root: Path, prefix: str | None, path: str) -> Path:
    p = PurePath(str(path))
    if p.is_absolute():
        return Path(p)
    return root / prefix / p if prefix else root / p


def _sequence_of(entry: dict, lidar_path: str, frame_id: str) -> str:
    for key in ("scene_token", "sequence_id", "context_name", "scene_name"):
        if entry.get(key):
            return str(entry[key])
    name = PurePath(str(lidar_path)).name
    return name.split("__", 1)[0] if "__" in name else frame_id


def _split_of(entry: dict, info_path: Path) -> str:
    if entry.get("split"):
        return str(entry["split"])
    match = _SPLIT_IN_NAME.search(info_path.stem)
    return match.group(1) if match else "train"


def _camera_records(entry, root, camera_prefix, check, lidar2ego) -> list[CameraRecord]:
    records = []
    for name, image in sorted((entry.get("images") or {}).items()):
        if not isinstance(image, dict) or not image.get("img_path"):
            continue  # KITTI lists CAM0/1/3 calibrations without images
        prefix = camera_prefix.get(name, camera_prefix.get("*")) if isinstance(camera_prefix, dict) else camera_prefix
        path = _resolve(root, prefix, image["img_path"])
        projection = np.asarray(image.get("cam2img"), dtype=np.float64)
        if projection.ndim != 2 or projection.shape[0] < 3 or projection.shape[1] < 3:
            raise ValueError(f"camera {name} has no valid cam2img")
        if "lidar2cam" in image:
            lidar2cam = np.asarray(image["lidar2cam"], dtype=np.float64)
        elif "cam2ego" in image:
            lidar2cam = np.linalg.inv(np.asarray(image["cam2ego"], dtype=np.float64)) @ lidar2ego
        else:
            raise ValueError(f"camera {name} has neither lidar2cam nor cam2ego")
        intrinsics = projection[:3, :3]
        if projection.shape[1] == 4 and np.any(projection[:3, 3]):
            # KITTI's P2 = K [I | t]: fold the stereo offset into the extrinsic so
            # that cam2img @ lidar2cam still equals the projection the info gives.
            offset = np.eye(4)
            offset[:3, 3] = np.linalg.solve(intrinsics, projection[:3, 3])
            lidar2cam = offset @ lidar2cam
        width, height = int(image.get("width", 0) or 0), int(image.get("height", 0) or 0)
        if not path.is_file():
            raise _FileProblem(f"camera image {path} is missing", path)
        if check != "exists" and not (width and height):
            from PIL import Image

            try:
                with Image.open(path) as opened:
                    width, height = opened.size
            except Exception as exc:
                raise _FileProblem(f"camera image {path} is unreadable ({type(exc).__name__}: {exc})", path) from exc
        records.append(CameraRecord(name=name, path=str(path), cam2img=intrinsics, lidar2cam=lidar2cam,
                                    width=width, height=height))
    return records


def read_info_file(info_path: Path, root: Path, *, lidar_prefix=None, camera_prefix=None, check="header",
                   box_frame=None, box_origin_z=None, camera_key=None, frame_id_prefix="") -> FrameSourceResult:
    """Frames of one info file (see the module docstring)."""
    info = load_info_file(info_path)
    metainfo = info["metainfo"]
    frame_kind, origin_z, ref_camera = box_convention(metainfo, box_frame, box_origin_z, camera_key)
    class_names = _class_names(metainfo)
    dataset = str(metainfo.get("dataset", SOURCE))
    result = FrameSourceResult()
    for index, entry in enumerate(info["data_list"]):
        raw_id = entry.get("token", entry.get("sample_idx", index))
        frame_id = _UNSAFE_ID_CHARS.sub("_", f"{frame_id_prefix}{raw_id}")
        lidar_info = entry.get("lidar_points") or {}
        lidar_rel = lidar_info.get("lidar_path")
        lidar_path = _resolve(root, lidar_prefix, lidar_rel) if lidar_rel else Path()
        try:
            validate_frame_id(frame_id)
            if not lidar_rel:
                raise ValueError(f"entry {index} has no lidar_points.lidar_path")
            lidar_format = LidarFormat(kind="bin", num_features=int(lidar_info.get("num_pts_feats", 4)))
            if not lidar_path.is_file():
                raise _FileProblem(f"LiDAR file {lidar_path} is missing", lidar_path)
            if check == "header":
                check_bin_file(lidar_path, lidar_format)
            elif check == "points":
                read_bin_points(lidar_path, lidar_format)
            lidar2ego = np.asarray(lidar_info.get("lidar2ego", np.eye(4)), dtype=np.float64)
            cameras = _camera_records(entry, root, camera_prefix, check, lidar2ego)
            boxes, labels, dropped = _instances(entry, class_names, frame_kind, origin_z, ref_camera)
        except (OSError, ValueError, KeyError, TypeError, LidarReadError) as exc:
            bad = getattr(exc, "path", lidar_path if isinstance(exc, LidarReadError) else info_path)
            result.quarantine(frame_id, f"{info_path.name} entry {index}: {exc}", str(bad), dataset)
            continue
        result.dropped_objects.update(dropped)
        timestamp = entry.get("timestamp", lidar_info.get("timestamp"))
        result.frames.append(
            FrameRecord(
                frame_id=frame_id,
                sequence_id=_sequence_of(entry, lidar_rel, frame_id),
                timestamp=_seconds(timestamp),
                lidar_path=str(lidar_path),
                lidar_format=lidar_format,
                cameras=tuple(cameras),
                boxes=boxes,
                labels=labels,
                source=dataset,
                split=_split_of(entry, info_path),
            )
        )
    return result


def _instances(entry, class_names, frame_kind, origin_z, ref_camera):
    """``(boxes, labels, dropped)`` of an entry; ``None, None`` for an unlabeled entry."""
    dropped: Counter = Counter()
    if "instances" not in entry:
        return None, None, dropped
    kept_boxes, kept_labels = [], []
    for instance in entry["instances"]:
        raw_label = int(instance.get("bbox_label_3d", instance.get("bbox_label", -1)))
        name = class_names.get(raw_label, f"label {raw_label}")
        label = detection_label(name) if raw_label >= 0 else None
        if label is None:
            dropped["ignored (-1)" if raw_label < 0 else name] += 1
            continue
        box = np.asarray(instance["bbox_3d"], dtype=np.float64).reshape(-1)[:7]
        if box.size != 7 or not np.isfinite(box).all():
            raise ValueError(f"malformed bbox_3d {instance['bbox_3d']!r}")
        kept_boxes.append(box)
        kept_labels.append(label)
    boxes = np.asarray(kept_boxes, dtype=np.float64).reshape(-1, 7)
    if frame_kind == "camera" and len(boxes):
        image = (entry.get("images") or {}).get(ref_camera) or {}
        if "lidar2cam" not in image:
            raise ValueError(f"camera-frame boxes need images.{ref_camera}.lidar2cam, which is missing")
        boxes = camera_boxes_to_lidar(boxes, np.asarray(image["lidar2cam"]))
    else:
        boxes = to_bottom_origin(boxes, origin_z)
    return boxes.astype(np.float32), np.asarray(kept_labels, dtype=np.int64), dropped


def read_frames(root: str | Path, info: str | Path | None = None, *, lidar_prefix: str | None = None,
                camera_prefix: str | dict[str, str] | None = None, check: str = "header",
                box_frame: str | None = None, box_origin_z: float | None = None, camera_key: str | None = None,
                frame_id_prefix: str = "") -> FrameSourceResult:
    """All frames of the info file(s) under ``root``.

    ``info``: the info file (default: every ``*.pkl`` in ``root``);
    ``lidar_prefix`` / ``camera_prefix``: folders under ``root`` the entries'
    file names live in (``camera_prefix`` may map camera name -> folder, ``"*"``
    for the rest); ``check``: ``"exists"``, ``"header"`` (default: also file
    sizes and image headers) or ``"points"`` (decode every cloud);
    ``box_frame`` / ``box_origin_z`` / ``camera_key`` override the per-dataset
    box convention; ``frame_id_prefix`` keeps ids unique across datasets.
    """
    if check not in CHECK_LEVELS:
        raise ValueError(f"check={check!r}: use one of {CHECK_LEVELS}")
    root = Path(root)
    result = FrameSourceResult()
    for info_path in find_info_files(root, info):
        result.extend(read_info_file(info_path, root, lidar_prefix=lidar_prefix, camera_prefix=camera_prefix,
                                     check=check, box_frame=box_frame, box_origin_z=box_origin_z,
                                     camera_key=camera_key, frame_id_prefix=frame_id_prefix))
    return result
