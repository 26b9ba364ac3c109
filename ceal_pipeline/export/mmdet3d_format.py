"""The mmdet3d info format (v2: ``{'metainfo', 'data_list'}``) for in-house tools.

An export's ``mmdet3d_infos.pkl`` is what mmdet3d's data converters write for
nuScenes-style layouts, one ``data_list`` entry per task:

- ``token`` = the frame id (the external id), ``sample_idx`` its position,
  ``sequence_id``, ``timestamp`` (s), ``ego2global`` where the source has a pose;
- ``lidar_points.{lidar_path, num_pts_feats}``: the LiDAR URI;
- ``images.<camera>.{img_path, cam2img, lidar2cam, height, width, lens_model, distortion}``;
- ``instances[j].{bbox_3d, bbox_label_3d, bbox_3d_isvalid, score}``: the pre-labels,
  ``bbox_3d = [x, y, z, l, w, h, yaw]`` with the *gravity centre* as origin
  (``metainfo.box_origin = [0.5, 0.5, 0.5]``, as the nuScenes infos).

``metainfo.categories`` maps the ontology's class names to labels. A delivery is
the same structure (``instances`` holding the labels) as ``.json`` or ``.pkl``.
Pickles from outside are read with an unpickler that admits only plain
containers and numpy arrays, never arbitrary classes (a pickle can run code).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ceal_pipeline.bounded_input import UntrustedInputError, load_json, load_pickle
from ceal_pipeline.export.label_spec import LABEL_SPEC_VERSION
from ceal_pipeline.export.openlabel import MalformedDelivery
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor, vendor_boxes_to_pipeline
from ceal_pipeline.export.vendor_tasks import FrameTask
from ceal_pipeline.frames.records import DETECTION_CLASSES, validate_frame_id

BOX_ORIGIN = (0.5, 0.5, 0.5)


def _metainfo(round_index: int | None = None) -> dict:
    meta = {
        "dataset": "ceal-vendor-export", "info_version": "1.1", "box_type_3d": "LiDAR",
        "box_origin": list(BOX_ORIGIN), "categories": {name: i for i, name in enumerate(DETECTION_CLASSES)},
        "label_spec_version": LABEL_SPEC_VERSION,
    }
    if round_index is not None:
        meta["ceal_round"] = round_index
    return meta


def _instances(boxes: np.ndarray, class_names: Sequence[str], scores=None) -> list[dict]:
    instances = []
    for i, (box, name) in enumerate(zip(pipeline_boxes_to_vendor(boxes), class_names)):
        instance = {"bbox_3d": [float(v) for v in box], "bbox_label_3d": DETECTION_CLASSES.index(name),
                    "bbox_3d_isvalid": True}
        if scores is not None:
            instance["score"] = float(scores[i])
        instances.append(instance)
    return instances


def mmdet3d_infos(tasks: Sequence[FrameTask], round_index: int) -> dict:
    """The info dictionary of ``tasks`` (see the module docstring)."""
    data_list = []
    for index, task in enumerate(tasks):
        record = task.record
        entry = {
            "sample_idx": index, "token": task.external_id, "sequence_id": record.sequence_id,
            "timestamp": task.timestamp,
            "lidar_points": {"lidar_path": task.lidar_uri, "num_pts_feats": int(record.lidar_format.num_features)},
            "images": {
                c.name: {"img_path": uri, "cam2img": np.asarray(c.cam2img, np.float64).tolist(),
                         "lidar2cam": np.asarray(c.lidar2cam, np.float64).tolist(), "height": int(c.height),
                         "width": int(c.width), "lens_model": c.model, "distortion": [float(d) for d in c.distortion]}
                for c, uri in zip(record.cameras, task.camera_uris)
            },
            "instances": [],
        }
        if task.ego_pose is not None:
            entry["ego2global"] = task.ego_pose.tolist()
        if task.pre_labels is not None:
            entry["instances"] = _instances(task.pre_labels.boxes, task.pre_labels.class_names, task.pre_labels.scores)
        data_list.append(entry)
    return {"metainfo": _metainfo(round_index), "data_list": data_list}


def mmdet3d_delivery(labels: dict[str, tuple[np.ndarray, tuple[str, ...]]], annotator: str) -> dict:
    """A delivery: frame id -> (pipeline boxes, class names) as an info dictionary."""
    meta = _metainfo()
    meta["annotator"] = annotator
    return {"metainfo": meta, "data_list": [
        {"sample_idx": i, "token": frame_id, "instances": _instances(boxes, names)}
        for i, (frame_id, (boxes, names)) in enumerate(labels.items())
    ]}


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def parse_mmdet3d_delivery(payload: object, path: Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Frame id -> (pipeline boxes, class names) of an info-format delivery."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data_list"), list):
        raise MalformedDelivery(f"{path}: not an mmdet3d info file (needs {{'metainfo', 'data_list'}})")
    metainfo = payload.get("metainfo", {})
    categories = metainfo.get("categories") if isinstance(metainfo, dict) else None
    if not isinstance(categories, dict) or not categories:
        raise MalformedDelivery(f"{path}: metainfo.categories (class name -> label) is missing")
    origin = metainfo.get("box_origin", list(BOX_ORIGIN))
    if [float(v) for v in origin] != list(BOX_ORIGIN):
        raise MalformedDelivery(f"{path}: metainfo.box_origin {origin} is not the gravity centre {list(BOX_ORIGIN)} "
                                "the export asked for; deliver bbox_3d with the gravity centre as origin")
    name_of = {int(v): str(k) for k, v in categories.items()}
    labels = {}
    for index, entry in enumerate(payload["data_list"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise MalformedDelivery(f"{path}: data_list[{index}] has no 'token' (the exported frame id)")
        try:
            frame_id = validate_frame_id(entry["token"])
        except ValueError as exc:
            raise MalformedDelivery(f"{path}: data_list[{index}]: {exc}") from None
        if frame_id in labels:
            raise MalformedDelivery(f"{path}: frame {frame_id} appears twice in data_list")
        boxes, names = [], []
        for j, instance in enumerate(entry.get("instances", [])):
            try:
                box = [_number(v) for v in instance["bbox_3d"]]
                label = instance["bbox_label_3d"]
                if len(box) != 7:
                    raise ValueError(f"bbox_3d has {len(box)} values, not 7")
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedDelivery(f"{path}: frame {frame_id} instance {j}: {exc}") from None
            boxes.append(box)
            names.append(name_of.get(int(label), f"<label {label}>"))
        labels[frame_id] = vendor_boxes_to_pipeline(np.asarray(boxes, np.float64).reshape(-1, 7), names,
                                                    where=f"{path} frame {frame_id}")
    return labels


def load_info_payload(path: Path, data: bytes) -> object:
    """The content of an info-format delivery's bytes (JSON, or a ``.pkl`` pickle), parsed with
    bounds (:mod:`ceal_pipeline.bounded_input`): a pickle may build plain containers and numpy
    arrays only, never arbitrary classes (a pickle can run code). Raises :class:`MalformedDelivery`."""
    path = Path(path)
    try:
        return load_json(data, str(path)) if path.suffix != ".pkl" else load_pickle(data, str(path))
    except UntrustedInputError as exc:
        raise MalformedDelivery(f"not a readable info file: {exc}") from None


def dump_infos(infos: dict) -> bytes:
    """The bytes of an info file as mmdet3d's converters write it (a pickle)."""
    return pickle.dumps(infos, protocol=4)
