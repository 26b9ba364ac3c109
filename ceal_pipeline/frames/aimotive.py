"""Frames from the aiMotive Multimodal Dataset layout.

One sequence folder looks like::

    <sequence>/dynamic/raw-revolutions/frame_<id>.laz   LiDAR, body frame (x fwd, y left, z up)
    <sequence>/dynamic/box/3d_body/frame_<id>.json      boxes, body frame (optional: unlabeled)
    <sequence>/sensor/camera/<CAM>/<CAM>_<id>.jpg       images
    <sequence>/sensor/calibration/calibration.json      per sensor RT_body_from_sensor, intrinsics

and the dataset nests sequences as ``data/<split>/<condition>/<sequence>``.
``root`` may be the dataset root, any folder above sequences, or one sequence.

Conventions handled here: the LAZ points and the boxes are both in the body
frame, so the body frame *is* the record's LiDAR frame and each camera's
``lidar2cam`` is its ``RT_sensor_from_body``. Box ``Origin`` is the box centre,
``Extent`` the full length, width, height, and the orientation a W, X, Y, Z
quaternion of which the yaw is kept. Object types go through
:data:`ceal_pipeline.frames.classes.CLASS_MAPPING`; unmapped ones are dropped
and counted. The frame timestamp is the GPS time (ns, stored in seconds) of the
first point of the revolution.

A camera folder that is absent from a sequence is left out of its records; a
camera whose folder exists but lacks the frame's image quarantines the frame.

Frame ids are ``<sequence folder>:<frame number>``, kept as they are (``@`` is a
valid id character); a sequence whose folder name makes invalid ids (spaces,
non-ASCII letters) has its frames quarantined with the name shown, and the
other sequences are read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ceal_pipeline.bounded_input import load_json
from ceal_pipeline.frames.box_conventions import quaternion_wxyz_to_yaw, to_bottom_origin
from ceal_pipeline.frames.classes import detection_label
from ceal_pipeline.frames.entry_checks import MAX_BOX_VALUE, out_of_range_boxes
from ceal_pipeline.frames.file_checks import CHECK_LEVELS, FileChecks
from ceal_pipeline.frames.points import LidarReadError, read_laz_points, read_laz_start_time
from ceal_pipeline.frames.records import (
    CameraRecord,
    FrameRecord,
    LidarFormat,
    invalid_id_message,
    is_valid_frame_id,
    shown_id,
)
from ceal_pipeline.frames.result import FrameSourceResult

SOURCE = "aimotive"
_SPLITS = {"train", "val", "test"}
_FRAME_FILE = re.compile(r"frame_(\d+)\.(laz|json)")


def find_sequences(root: str | Path, max_depth: int = 5) -> list[Path]:
    """Sequence folders (those holding ``dynamic/``) at or below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"aiMotive root {root} is not a folder: pass the dataset root or a sequence folder")
    found: list[Path] = []
    frontier = [root]
    for _ in range(max_depth + 1):
        next_frontier = []
        for folder in frontier:
            if (folder / "dynamic").is_dir():
                found.append(folder)  # do not descend into a sequence's thousands of files
            else:
                next_frontier.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
        frontier = next_frontier
    return sorted(found)


def frame_id_for(sequence_name: str, frame_number: str) -> str:
    """``<sequence>:<frame>``, as it is (validated by the reader, never rewritten)."""
    return f"{sequence_name}:{frame_number}"


def read_cameras(sequence_dir: Path) -> list[dict]:
    """Camera calibrations of a sequence whose image folders exist.

    Each entry: ``name``, ``lidar2cam`` (4x4, body -> camera), ``cam2img`` (3x3),
    ``width``, ``height``, ``model``, ``distortion``. Raises ``ValueError`` naming
    the file when ``calibration.json`` is missing or malformed.
    """
    path = sequence_dir / "sensor" / "calibration" / "calibration.json"
    try:
        calibration = load_json(path.read_bytes(), f"calibration file {path}")
    except (OSError, ValueError) as exc:
        raise ValueError(f"calibration file {path} is unreadable ({exc}); restore it from the dataset") from exc
    if not isinstance(calibration, dict):
        raise ValueError(f"calibration file {path} is not a sensor-name -> calibration mapping; restore it")
    cameras = []
    for name, sensor in sorted(calibration.items()):
        if not isinstance(sensor, dict) or sensor.get("sensor_type") != "camera":
            continue
        if not (sequence_dir / "sensor" / "camera" / name).is_dir():
            continue
        try:
            if "RT_sensor_from_body" in sensor:
                lidar2cam = np.asarray(sensor["RT_sensor_from_body"], dtype=np.float64)
            else:
                lidar2cam = np.linalg.inv(np.asarray(sensor["RT_body_from_sensor"], dtype=np.float64))
            fx, fy = (float(v) for v in sensor["focal_length_px"])
            cx, cy = (float(v) for v in sensor["principal_point_px"])
            width, height = (int(v) for v in sensor.get("image_resolution_px", (0, 0)))
            model = str(sensor.get("model", "pinhole"))
            coeffs = tuple(float(c) for c in sensor.get("distortion_coeffs", ()))
            # The Mei (unified omnidirectional) model adds the mirror parameter xi.
            distortion = ((float(sensor["xi"]),) + coeffs) if model == "mei" and "xi" in sensor else coeffs
        except (KeyError, TypeError, ValueError, np.linalg.LinAlgError) as exc:
            raise ValueError(f"calibration file {path}: camera {name} lacks a valid entry ({type(exc).__name__}: "
                             f"{exc}); restore the file from the dataset") from exc
        if lidar2cam.shape != (4, 4):
            raise ValueError(f"calibration file {path}: camera {name} extrinsic is {lidar2cam.shape}, expected 4x4")
        if not (np.isfinite(lidar2cam).all() and np.isfinite([fx, fy, cx, cy, *distortion]).all()):
            raise ValueError(f"calibration file {path}: camera {name} has a non-finite extrinsic, intrinsic or "
                             "distortion value; restore the file from the dataset")
        if fx <= 0 or fy <= 0 or width < 0 or height < 0:
            raise ValueError(f"calibration file {path}: camera {name} has a non-positive focal length or a "
                             "negative resolution; restore the file from the dataset")
        cameras.append(
            dict(
                name=name,
                lidar2cam=lidar2cam,
                cam2img=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
                width=width,
                height=height,
                model=model,
                distortion=distortion,
            )
        )
    return cameras


_BOX_KEYS = tuple(f"BoundingBox3D {part} {a}" for part, axes in (("Origin", "XYZ"), ("Extent", "XYZ"),
                                                                  ("Orientation Quat", "WXYZ")) for a in axes)


def parse_boxes(path: Path, dropped: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes (n, 7) float32, labels (n,) int64)`` from a ``3d_body`` JSON file.

    Raises ``ValueError`` naming the file and object when it is malformed.
    """
    payload = load_json(path.read_bytes(), str(path))  # bounded depth, no key twice
    objects = payload.get("CapturedObjects") if isinstance(payload, dict) else None
    if not isinstance(objects, list):
        raise ValueError(f"{path}: expected {{'CapturedObjects': [...]}}, got {type(payload).__name__} "
                         f"with CapturedObjects {type(objects).__name__}")
    boxes, labels = [], []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: object {i} is a {type(obj).__name__}, not an object with BoundingBox3D fields")
        type_name = str(obj.get("ObjectType", ""))
        label = detection_label(type_name)
        if label is None:
            dropped[type_name] = dropped.get(type_name, 0) + 1
            continue
        try:
            centre = [float(obj[f"BoundingBox3D Origin {a}"]) for a in "XYZ"]
            extent = [float(obj[f"BoundingBox3D Extent {a}"]) for a in "XYZ"]
            quat = [float(obj[f"BoundingBox3D Orientation Quat {a}"]) for a in "WXYZ"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: object {i} ({type_name}) lacks {exc}") from exc
        values = np.array(centre + extent + quat)
        if not np.isfinite(values).all() or min(extent) <= 0 or not np.any(quat) or \
                out_of_range_boxes(values[None, :6])[0] or any(isinstance(obj[k], bool) for k in _BOX_KEYS):
            raise ValueError(f"{path}: object {i} ({type_name}) has a non-finite or boolean value, a value beyond "
                             f"{MAX_BOX_VALUE:g} m, a non-positive extent or a zero orientation quaternion")
        yaw = float(quaternion_wxyz_to_yaw(np.array(quat))[0])
        boxes.append([*centre, *extent, yaw])
        labels.append(label)
    # Origin is the box centre; the record wants the centre of the bottom face.
    return to_bottom_origin(np.asarray(boxes).reshape(-1, 7)).astype(np.float32), np.asarray(labels, dtype=np.int64)


def read_sequence(sequence_dir: Path, check: str = "header") -> FrameSourceResult:
    """Frames of one sequence folder (see the module docstring)."""
    result = FrameSourceResult()
    image_checks = FileChecks(check)  # header: the image header is read; points: the image is decoded
    name = sequence_dir.name
    split = sequence_dir.parent.parent.name if sequence_dir.parent.parent.name in _SPLITS else "train"
    lidar_dir = sequence_dir / "dynamic" / "raw-revolutions"
    box_dir = sequence_dir / "dynamic" / "box" / "3d_body"
    names = [f.name for d in (lidar_dir, box_dir) if d.is_dir() for f in d.iterdir()]
    numbers = sorted({m.group(1) for name in names if (m := _FRAME_FILE.fullmatch(name))})
    try:
        cameras = read_cameras(sequence_dir)
        calibration_error = None
    except ValueError as exc:
        cameras, calibration_error = [], str(exc)
    for number in numbers:
        frame_id = frame_id_for(name, number)
        lidar_path = lidar_dir / f"frame_{number}.laz"
        if not is_valid_frame_id(frame_id):
            result.quarantine(shown_id(frame_id), f"sequence folder {sequence_dir}: {invalid_id_message(frame_id)}",
                              sequence_dir, SOURCE)
            continue
        if calibration_error:
            result.quarantine(frame_id, calibration_error, sequence_dir / "sensor" / "calibration", SOURCE)
            continue
        if not lidar_path.is_file():
            result.quarantine(frame_id, f"LiDAR file {lidar_path} is missing", lidar_path, SOURCE)
            continue
        timestamp = float("nan")
        try:
            if check in ("header", "points"):
                _, gps_time_ns = read_laz_start_time(lidar_path)
                timestamp = gps_time_ns * 1e-9
            if check == "points":
                read_laz_points(lidar_path)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, LidarReadError) else f"LAZ file {lidar_path} is unreadable ({exc})"
            result.quarantine(frame_id, reason, lidar_path, SOURCE)
            continue
        boxes = labels = None
        box_path = box_dir / f"frame_{number}.json"
        if box_path.is_file():
            dropped: dict[str, int] = {}
            try:
                boxes, labels = parse_boxes(box_path, dropped)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                result.quarantine(frame_id, f"malformed annotation {box_path}: {exc}", box_path, SOURCE)
                continue
            result.dropped_objects.update(dropped)
        camera_records, camera_problem = [], None
        for camera in cameras:
            image_path = sequence_dir / "sensor" / "camera" / camera["name"] / f"{camera['name']}_{number}.jpg"
            checked = image_checks.image(str(image_path), need_size=True)
            camera_problem = checked[0] if isinstance(checked[0], str) else None
            if camera_problem:
                break
            camera_records.append(CameraRecord(path=str(image_path), **camera))
        if camera_problem:
            result.quarantine(frame_id, camera_problem, image_path, SOURCE)
            continue
        result.frames.append(
            FrameRecord(
                frame_id=frame_id,
                sequence_id=name,
                timestamp=timestamp,
                lidar_path=str(lidar_path),
                lidar_format=LidarFormat(kind="laz", num_features=4, use_dims=(0, 1, 2, 3)),
                cameras=tuple(camera_records),
                boxes=boxes,
                labels=labels,
                source=SOURCE,
                split=split,
            )
        )
    return result


def read_frames(root: str | Path, check: str = "header") -> FrameSourceResult:
    """All frames under an aiMotive ``root`` (dataset root, split folder or one sequence).

    ``check``: ``"exists"`` only stats files (timestamps are NaN), ``"header"``
    (default) also decodes each LAZ header and first point (the timestamp) and
    each image header, ``"points"`` decodes every point cloud fully.
    """
    if check not in CHECK_LEVELS:
        raise ValueError(f"check={check!r}: use one of {CHECK_LEVELS}")
    sequences = find_sequences(root)
    if not sequences:
        raise FileNotFoundError(
            f"no aiMotive sequence under {root}: expected folders holding dynamic/raw-revolutions "
            "(data/<split>/<condition>/<sequence>/...)"
        )
    result = FrameSourceResult()
    for sequence_dir in sequences:
        result.extend(read_sequence(sequence_dir, check=check))
    return result
