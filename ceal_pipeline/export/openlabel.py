"""ASAM OpenLABEL 1.0 JSON: one scene per exported frame, and deliveries read back.

An exported scene (``openlabel/<frame id>.json``) holds

- ``metadata``: ``schema_version`` 1.0.0, ``name`` and ``external_id`` = the frame id,
  the sequence, the round and the label specification's version;
- ``streams``: ``LIDAR`` (type ``lidar``, its URI) and one ``camera`` stream per
  camera with its URI and intrinsics (``intrinsics_pinhole`` with
  ``camera_matrix_3x4`` and ``distortion_coeffs_1xN`` for pinhole/OpenCV lenses;
  ``intrinsics_custom`` naming the model, e.g. ``mei`` with ``xi``, otherwise);
- ``coordinate_systems``: ``LIDAR`` (the labels' frame, the root) and one
  ``sensor_cs`` per camera whose ``pose_wrt_parent.matrix4x4`` (row-major) maps
  camera coordinates to LIDAR coordinates (the inverse of ``lidar2cam``); with an
  ego pose also ``world`` and ``ego`` and a frame transform ``ego_to_world``;
- ``frames["0"]``: ``frame_properties`` with ``external_id``, ``timestamp`` and
  the transforms, and the pre-labels as cuboids (``coordinate_system`` ``LIDAR``,
  ``val = [x, y, z, qx, qy, qz, qw, sx, sy, sz]``, centre origin) with a
  ``pre_label`` boolean and a ``score`` number attribute; ``objects`` at the root
  give each its ``type`` (an ontology class name).

A delivery is any OpenLABEL document whose frames carry
``frame_properties.external_id`` (or, for a one-frame document,
``metadata.external_id``), and whose objects have a ``type`` and cuboids in
``LIDAR`` coordinates, in the frame's ``objects`` or (static) at the root. A
frame listed with no cuboid was labeled and holds no object.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ceal_pipeline.bounded_input import UntrustedInputError, load_json
from ceal_pipeline.export.label_spec import LABEL_SPEC_VERSION, MAX_TILT_DEG
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor, vendor_boxes_to_pipeline
from ceal_pipeline.export.vendor_tasks import FrameTask
from ceal_pipeline.frames.box_conventions import quaternion_xyzw_to_yaw, yaw_to_quaternion_xyzw
from ceal_pipeline.frames.records import CameraRecord, validate_frame_id

SCHEMA_VERSION = "1.0.0"
LIDAR_CS = "LIDAR"
_PINHOLE_MODELS = ("pinhole", "opencv_pinhole")


class MalformedDelivery(ValueError):
    """A delivery file that is not what its format says it is."""


def _flat(matrix: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(matrix, dtype=np.float64).reshape(-1)]


#: The Mei (unified omnidirectional) model's coefficients in the order the aiMotive calibration gives them.
_MEI_COEFFICIENTS = ("xi", "k1", "k2", "p1", "p2", "k3")


def _lens_description(camera: CameraRecord) -> str:
    """Names exactly the coefficients written in ``distortion_coeffs_1xN``."""
    n = len(camera.distortion)
    if camera.model == "mei" and n <= len(_MEI_COEFFICIENTS):
        return f"mei: unified omnidirectional model, coefficients ({', '.join(_MEI_COEFFICIENTS[:n])})"
    return f"{camera.model} lens model, {n} distortion coefficients"


def _intrinsics(camera: CameraRecord) -> dict:
    if camera.model in _PINHOLE_MODELS:
        return {"intrinsics_pinhole": {
            "width_px": int(camera.width), "height_px": int(camera.height),
            "camera_matrix_3x4": _flat(np.hstack([np.asarray(camera.cam2img), np.zeros((3, 1))])),
            "distortion_coeffs_1xN": [float(d) for d in camera.distortion],
        }}
    return {"intrinsics_custom": {
        "model": camera.model, "width_px": int(camera.width), "height_px": int(camera.height),
        "camera_matrix_3x3": _flat(camera.cam2img),
        "distortion_coeffs_1xN": [float(d) for d in camera.distortion],
        "description": _lens_description(camera),
    }}


def cuboid_val(centre_box: np.ndarray) -> list[float]:
    """OpenLABEL cuboid ``val`` of one centre-origin ``x y z l w h yaw`` box."""
    x, y, z, length, width, height, yaw = (float(v) for v in centre_box)
    qx, qy, qz, qw = (float(v) for v in yaw_to_quaternion_xyzw(np.array([yaw]))[0])
    return [x, y, z, qx, qy, qz, qw, length, width, height]


def _objects(boxes: np.ndarray, class_names, attributes=None) -> tuple[dict, dict]:
    """Root ``objects`` (type per uid) and the frame's ``objects`` (cuboid per uid)."""
    root, frame = {}, {}
    for i, (box, name) in enumerate(zip(pipeline_boxes_to_vendor(boxes), class_names)):
        uid = str(i)
        root[uid] = {"name": f"{name}-{i}", "type": name, "frame_intervals": [{"frame_start": 0, "frame_end": 0}]}
        cuboid = {"name": "shape", "coordinate_system": LIDAR_CS, "val": cuboid_val(box)}
        if attributes is not None:
            cuboid["attributes"] = attributes(i)
        frame[uid] = {"object_data": {"cuboid": [cuboid]}}
    return root, frame


def openlabel_scene(task: FrameTask, round_index: int) -> dict:
    """The OpenLABEL document of one task (see the module docstring)."""
    record = task.record
    streams = {LIDAR_CS: {"type": "lidar", "uri": task.lidar_uri,
                          "description": f"{record.lidar_format.kind} point cloud, "
                                         f"{record.lidar_format.num_features} values per point"}}
    coordinate_systems = {LIDAR_CS: {"type": "sensor_cs", "parent": "", "children": [c.name for c in record.cameras]}}
    for camera, uri in zip(record.cameras, task.camera_uris):
        streams[camera.name] = {"type": "camera", "uri": uri, "description": f"lens model {camera.model}",
                                "stream_properties": _intrinsics(camera)}
        coordinate_systems[camera.name] = {
            "type": "sensor_cs", "parent": LIDAR_CS, "children": [],
            "pose_wrt_parent": {"matrix4x4": _flat(np.linalg.inv(np.asarray(camera.lidar2cam, np.float64)))},
        }
    frame_properties: dict = {"external_id": task.external_id}
    if task.timestamp is not None:
        frame_properties["timestamp"] = task.timestamp
    pose = task.ego_pose
    if pose is not None:
        coordinate_systems["world"] = {"type": "scene_cs", "parent": "", "children": ["ego"]}
        coordinate_systems["ego"] = {"type": "local_cs", "parent": "world", "children": []}
        frame_properties["transforms"] = {"ego_to_world": {
            "src": "ego", "dst": "world", "transform_src_to_dst": {"matrix4x4": _flat(pose)}}}
    frame: dict = {"frame_properties": frame_properties}
    document: dict = {
        "metadata": {
            "schema_version": SCHEMA_VERSION, "name": task.external_id, "external_id": task.external_id,
            "sequence_id": record.sequence_id, "ceal_round": round_index, "label_spec_version": LABEL_SPEC_VERSION,
        },
        "coordinate_systems": coordinate_systems,
        "streams": streams,
        "frames": {"0": frame},
        "frame_intervals": [{"frame_start": 0, "frame_end": 0}],
    }
    if task.pre_labels is not None and len(task.pre_labels.boxes):
        scores = task.pre_labels.scores
        root, objects = _objects(task.pre_labels.boxes, task.pre_labels.class_names, lambda i: {
            "boolean": [{"name": "pre_label", "val": True}], "num": [{"name": "score", "val": float(scores[i])}]})
        document["objects"], frame["objects"] = root, objects
    return {"openlabel": document}


def openlabel_delivery(labels: Mapping[str, tuple[np.ndarray, tuple[str, ...]]], annotator: str) -> dict:
    """A delivery document: ``labels`` maps frame id -> (pipeline boxes, class names). What a
    vendor returns; the demo's simulated vendor and the self-check write it."""
    frames, objects, uid = {}, {}, 0
    for index, (frame_id, (boxes, class_names)) in enumerate(labels.items()):
        root, frame_objects = _objects(boxes, class_names)
        renamed = {}
        for key in root:  # uids are unique across the document
            objects[str(uid)] = {**root[key], "frame_intervals": [{"frame_start": index, "frame_end": index}]}
            renamed[str(uid)] = frame_objects[key]
            uid += 1
        frames[str(index)] = {"frame_properties": {"external_id": frame_id}, "objects": renamed}
    return {"openlabel": {"metadata": {"schema_version": SCHEMA_VERSION, "annotator": annotator},
                          "objects": objects, "frames": frames}}


def _require(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise MalformedDelivery(f"{path}: {what}")


def _cuboids(object_data: dict, path: Path, where: str) -> list[list[float]]:
    _require(isinstance(object_data, dict), path, f"{where}: object_data must be an object")
    cuboids = object_data.get("cuboid", [])
    _require(isinstance(cuboids, list), path, f"{where}: object_data.cuboid must be a list")
    values = []
    for cuboid in cuboids:
        _require(isinstance(cuboid, dict) and isinstance(cuboid.get("val"), list), path,
                 f"{where}: a cuboid needs a 'val' list")
        cs = cuboid.get("coordinate_system", LIDAR_CS)
        _require(cs == LIDAR_CS, path, f"{where}: cuboid in coordinate system {cs!r}; deliver cuboids in "
                                        f"{LIDAR_CS!r} (the exported frame's LiDAR coordinates)")
        val = cuboid["val"]
        numbers = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in val)
        _require(len(val) == 10 and numbers, path,
                 f"{where}: cuboid val must be 10 numbers [x, y, z, qx, qy, qz, qw, sx, sy, sz], got {val!r}")
        values.append([float("nan") if v is None else float(v) for v in val])
    return values


def _require_upright(quaternions: np.ndarray, norms: np.ndarray, ok: np.ndarray, path: Path, frame_id: str) -> None:
    """Refuse a cuboid whose rotation is not (close to) a rotation about +z: the label
    specification asks for upright cuboids, and keeping only the yaw of a rolled or
    pitched one would silently store another box than the vendor drew."""
    if not ok.any():
        return
    unit = quaternions[ok] / norms[ok, None]
    # the cuboid's own z axis after the rotation, against +z: cos(tilt) = 1 - 2 (qx^2 + qy^2)
    tilt = np.degrees(np.arccos(np.clip(1.0 - 2.0 * (unit[:, 0] ** 2 + unit[:, 1] ** 2), -1.0, 1.0)))
    tilted = np.flatnonzero(tilt > MAX_TILT_DEG)
    if len(tilted):
        _require(False, path, f"frame {frame_id}: cuboid {int(np.flatnonzero(ok)[tilted[0]])} is tilted "
                 f"{tilt[tilted[0]]:.1f} degrees from upright (quaternion {unit[tilted[0]].round(4).tolist()}); the "
                 f"label specification allows rotations about +z only (at most {MAX_TILT_DEG} degrees of roll or "
                 "pitch): ask the vendor to deliver upright cuboids")


def parse_openlabel_delivery(payload: object, path: Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Frame id -> (pipeline boxes (n, 7), class names) of an OpenLABEL delivery; raises
    :class:`MalformedDelivery` or :class:`~.vendor_boxes.InvalidDeliveredBoxes` naming the file."""
    _require(isinstance(payload, dict) and isinstance(payload.get("openlabel"), dict), path,
             "not an OpenLABEL document (no top-level 'openlabel' object)")
    document = payload["openlabel"]
    version = str(document.get("metadata", {}).get("schema_version", ""))
    _require(version.startswith("1."), path, f"OpenLABEL schema_version {version!r}: only 1.x is read")
    frames = document.get("frames", {})
    objects = document.get("objects", {})
    _require(isinstance(frames, dict) and frames, path, "no 'frames': a delivery labels at least one frame")
    _require(isinstance(objects, dict), path, "'objects' must be an object")
    static = {uid: _cuboids(obj.get("object_data", {}), path, f"object {uid}") for uid, obj in objects.items()
              if isinstance(obj, dict)}
    labels = {}
    for key, frame in frames.items():
        _require(isinstance(frame, dict), path, f"frame {key} is not an object")
        external_id = frame.get("frame_properties", {}).get("external_id")
        if external_id is None and len(frames) == 1:
            external_id = document.get("metadata", {}).get("external_id")
        _require(isinstance(external_id, str), path, f"frame {key} has no frame_properties.external_id "
                                                     "(the exported frame id)")
        try:
            frame_id = validate_frame_id(external_id)
        except ValueError as exc:
            raise MalformedDelivery(f"{path}: frame {key}: {exc}") from None
        _require(frame_id not in labels, path, f"frame {frame_id} appears twice in the file")
        frame_objects = frame.get("objects", {})
        _require(isinstance(frame_objects, dict), path, f"frame {key}: 'objects' must be an object")
        vals, names = [], []
        uids = list(frame_objects)
        if len(frames) == 1:  # a one-frame scene may keep its cuboids as static object data
            uids += [u for u in static if static[u] and u not in frame_objects]
        for uid in uids:
            _require(uid in objects and isinstance(objects[uid].get("type"), str), path,
                     f"frame {key}: object {uid} has no 'type' in the root 'objects'")
            cuboids = _cuboids(frame_objects[uid].get("object_data", {}), path, f"frame {key} object {uid}") \
                if uid in frame_objects else static[uid]
            for val in cuboids:
                vals.append(val)
                names.append(objects[uid]["type"])
        values = np.asarray(vals, dtype=np.float64).reshape(-1, 10)
        quaternions = values[:, 3:7]
        norms = np.linalg.norm(quaternions, axis=1)
        yaw = np.full(len(values), np.nan)
        ok = np.isfinite(norms) & (norms > 1e-9)
        if ok.any():
            yaw[ok] = quaternion_xyzw_to_yaw(quaternions[ok])
        _require_upright(quaternions, norms, ok, path, frame_id)
        centre = np.column_stack([values[:, 0:3], values[:, 7:10], yaw])
        labels[frame_id] = vendor_boxes_to_pipeline(centre, names, where=f"{path} frame {frame_id}")
    return labels


def load_openlabel_payload(path: Path, data: bytes) -> object:
    """The JSON document of an OpenLABEL delivery's bytes, bounded in depth and size and with no
    key given twice (:mod:`ceal_pipeline.bounded_input`); raises :class:`MalformedDelivery`."""
    try:
        return load_json(data, str(path))
    except UntrustedInputError as exc:
        raise MalformedDelivery(f"not readable JSON: {exc}") from None


def parse_strictly(parse, payload: object, path: Path):
    """``parse(payload, path)``, with any structural surprise (a list where an object belongs,
    a missing key) turned into :class:`MalformedDelivery` naming the file."""
    from ceal_pipeline.export.vendor_boxes import InvalidDeliveredBoxes

    try:
        return parse(payload, path)
    except (MalformedDelivery, InvalidDeliveredBoxes):
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        raise MalformedDelivery(f"{path}: unexpected structure ({type(exc).__name__}: {exc})") from None
