"""Segments.ai point-cloud cuboid samples, and labels back from a Segments.ai release.

The export (``segments/`` in the drop) is what a team uploads with the
``segments-ai`` client into a dataset of task type ``pointcloud-cuboid``:

- ``segments/pointclouds/<stem>.pcd``: the frame's points as binary PCD
  (``x y z intensity`` float32, LiDAR frame), Segments.ai's ``pcd`` type;
- ``segments/samples.json``: ``task_type``, ``task_attributes`` (the ontology as
  categories, ids from 1) and per frame in rank order one sample:
  ``name`` (the frame id), ``metadata`` (``external_id``, ``sequence_id``,
  ``rank``, ``ceal_round``), ``attributes`` (Segments.ai's
  ``PointcloudSampleAttributes``: ``pcd.url`` the PCD's path relative to
  ``segments/`` until uploaded, ``pcd.type`` ``pcd``, ``timestamp`` in
  nanoseconds, ``ego_pose`` where the source has one, ``images`` with each
  camera's URI, intrinsics, extrinsics (the camera's pose in the LiDAR frame,
  OpenCV convention) and Brown-Conrady distortion for OpenCV lenses) and
  ``pre_label``: the detector's boxes as ``PointcloudCuboidLabelAttributes``.

Cuboids as Segments.ai defines them: ``position`` the centre, ``dimensions``
``x`` along the heading (length), ``y`` width, ``z`` height, ``yaw`` about +z
from +x, in the point cloud's frame (here the LiDAR frame).

A delivery is a Segments.ai release file (JSON, ``dataset.samples[]`` with
``labels.<labelset>.attributes.annotations``; the labelset ``ground-truth``).
A sample is matched by ``metadata.external_id``, else its ``name``; a sample
whose label is missing or not ``LABELED``/``REVIEWED`` is not delivered, and a
labeled sample without cuboids holds no object. Category ids resolve through
``dataset.task_attributes.categories``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ceal_pipeline.export.openlabel import MalformedDelivery
from ceal_pipeline.export.file_names import frame_file_stem
from ceal_pipeline.export.point_cloud_files import xyzi_pcd
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor, vendor_boxes_to_pipeline
from ceal_pipeline.export.vendor_tasks import FrameTask
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.records import DETECTION_CLASSES, CameraRecord, validate_frame_id

FOLDER = "segments"
SAMPLES_NAME = f"{FOLDER}/samples.json"
TASK_TYPE = "pointcloud-cuboid"
LABELSET = "ground-truth"
FORMAT_VERSION = "0.2"
_DELIVERED_STATUSES = ("LABELED", "REVIEWED")


def categories() -> list[dict]:
    """The ontology as Segments.ai task categories (ids from 1)."""
    return [{"id": i + 1, "name": name} for i, name in enumerate(DETECTION_CLASSES)]


def rotation_to_quaternion_xyzw(rotation: np.ndarray) -> list[float]:
    """A 3x3 rotation matrix -> ``[qx, qy, qz, qw]`` (Shepperd's method, stable for every angle)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    return [float(v) for v in q]


def _xyz(values) -> dict:
    return {"x": float(values[0]), "y": float(values[1]), "z": float(values[2])}


def _pose(matrix: np.ndarray) -> tuple[dict, dict]:
    qx, qy, qz, qw = rotation_to_quaternion_xyzw(matrix[:3, :3])
    return _xyz(matrix[:3, 3]), {"qx": qx, "qy": qy, "qz": qz, "qw": qw}


def _image(camera: CameraRecord, uri: str) -> dict:
    translation, rotation = _pose(np.linalg.inv(np.asarray(camera.lidar2cam, np.float64)))
    image = {"url": uri, "name": camera.name, "camera_convention": "OpenCV",
             "intrinsics": {"intrinsic_matrix": [[float(v) for v in row] for row in np.asarray(camera.cam2img)]},
             "extrinsics": {"translation": translation, "rotation": rotation}}
    if camera.model == "opencv_pinhole" and len(camera.distortion) >= 4:
        k1, k2, p1, p2, *rest = (float(d) for d in camera.distortion)
        image["distortion"] = {"model": "brown-conrady",
                               "coefficients": {"k1": k1, "k2": k2, "p1": p1, "p2": p2, "k3": rest[0] if rest else 0.0}}
    return image


def cuboid_annotations(boxes: np.ndarray, class_names: Sequence[str], scores=None) -> list[dict]:
    """Pipeline boxes -> Segments.ai cuboid annotations (ids from 1)."""
    out = []
    for i, (box, name) in enumerate(zip(pipeline_boxes_to_vendor(boxes), class_names)):
        annotation = {"id": i + 1, "category_id": DETECTION_CLASSES.index(name) + 1, "type": "cuboid",
                      "position": _xyz(box[:3]), "dimensions": _xyz(box[3:6]), "yaw": float(box[6])}
        if scores is not None:
            annotation["attributes"] = {"score": float(scores[i])}
        out.append(annotation)
    return out


def sample_json(task: FrameTask, rank: int, round_index: int, pcd_url: str) -> dict:
    """One Segments.ai sample (see the module docstring)."""
    attributes: dict = {"pcd": {"url": pcd_url, "type": "pcd"}, "name": task.external_id,
                        "images": [_image(c, u) for c, u in zip(task.record.cameras, task.camera_uris)]}
    if task.timestamp_ns is not None:
        attributes["timestamp"] = task.timestamp_ns
    if task.ego_pose is not None:
        position, heading = _pose(task.ego_pose)
        attributes["ego_pose"] = {"position": position, "heading": heading}
    pre = task.pre_labels
    return {
        "name": task.external_id,
        "metadata": {"external_id": task.external_id, "sequence_id": task.record.sequence_id, "rank": rank,
                     "ceal_round": round_index},
        "attributes": attributes,
        "pre_label": {"format_version": FORMAT_VERSION, "annotations": [] if pre is None else
                      cuboid_annotations(pre.boxes, pre.class_names, pre.scores)},
    }


def segments_files(tasks: Sequence[FrameTask], round_index: int) -> dict[str, bytes]:
    """Relative file name -> bytes of the Segments.ai samples of ``tasks`` (rank order)."""
    files, samples = {}, []
    for rank, task in enumerate(tasks, start=1):
        pcd = f"pointclouds/{frame_file_stem(task.external_id)}.pcd"
        files[f"{FOLDER}/{pcd}"] = xyzi_pcd(load_points(task.record))
        samples.append(sample_json(task, rank, round_index, pcd))
    document = {"task_type": TASK_TYPE, "task_attributes": {"format_version": "0.1", "categories": categories()},
                "labelset": LABELSET, "samples": samples}
    files[SAMPLES_NAME] = (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8")
    return files


def exported_frame_ids(folder: Path) -> list[str]:
    return [s["metadata"]["external_id"] for s in json.loads((folder / SAMPLES_NAME).read_text())["samples"]]


def segments_release(labels: Mapping[str, tuple[np.ndarray, tuple[str, ...]]], name: str = "ceal") -> dict:
    """A Segments.ai release document of ``labels`` (frame id -> pipeline boxes, class names): what
    the self-check and tests deliver in place of Segments.ai."""
    samples = [{"uuid": f"sample-{i}", "name": frame_id, "metadata": {"external_id": frame_id}, "attributes": {},
                "labels": {LABELSET: {"label_status": "LABELED", "attributes": {
                    "format_version": FORMAT_VERSION, "annotations": cuboid_annotations(boxes, names)}}}}
               for i, (frame_id, (boxes, names)) in enumerate(labels.items())]
    return {"name": name, "dataset": {"name": name, "task_type": TASK_TYPE, "labelsets": [{"name": LABELSET}],
                                      "task_attributes": {"format_version": "0.1", "categories": categories()},
                                      "samples": samples}}


def _require(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise MalformedDelivery(f"{path}: {what}")


def parse_segments_release(payload: object, path: Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Frame id -> (pipeline boxes, class names) of a Segments.ai release (see the module docstring)."""
    _require(isinstance(payload, dict) and isinstance(payload.get("dataset"), dict), path,
             "not a Segments.ai release (no top-level 'dataset' object)")
    dataset = payload["dataset"]
    task_type = dataset.get("task_type")
    _require(task_type in (TASK_TYPE, None), path, f"task_type {task_type!r}: only {TASK_TYPE} releases hold cuboids")
    category_names = {int(c["id"]): str(c["name"]) for c in dataset.get("task_attributes", {}).get("categories", [])}
    labels: dict = {}
    for index, sample in enumerate(dataset.get("samples", [])):
        frame_id = (sample.get("metadata") or {}).get("external_id") or sample.get("name")
        _require(isinstance(frame_id, str), path, f"sample {index} has no metadata.external_id or name")
        label = (sample.get("labels") or {}).get(LABELSET)
        if not label or label.get("label_status") not in _DELIVERED_STATUSES:
            continue
        try:
            frame_id = validate_frame_id(frame_id)
        except ValueError as exc:
            raise MalformedDelivery(f"{path}: sample {index}: {exc}") from None
        _require(frame_id not in labels, path, f"frame {frame_id} appears twice in the release")
        centres, names = [], []
        for annotation in (label.get("attributes") or {}).get("annotations", []):
            _require(annotation.get("type") == "cuboid", path,
                     f"frame {frame_id}: annotation type {annotation.get('type')!r}; only cuboids are read")
            category = int(annotation["category_id"])
            _require(category in category_names, path, f"frame {frame_id}: category_id {category} is not in "
                     "dataset.task_attributes.categories")
            p, d = annotation["position"], annotation["dimensions"]
            centres.append([p["x"], p["y"], p["z"], d["x"], d["y"], d["z"], annotation["yaw"]])
            names.append(category_names[category])
        values = np.asarray([[np.nan if v is None else float(v) for v in row] for row in centres],
                            np.float64).reshape(-1, 7)
        labels[frame_id] = vendor_boxes_to_pipeline(values, names, where=f"{path} frame {frame_id}")
    _require(bool(labels), path, f"no sample labeled in labelset {LABELSET!r} (status LABELED or REVIEWED)")
    return labels


def read_segments_release(path: str | Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Read and parse one Segments.ai release file."""
    from ceal_pipeline.export.openlabel import parse_strictly

    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise MalformedDelivery(f"{path}: not readable JSON ({exc})") from None
    return parse_strictly(parse_segments_release, payload, Path(path))
