"""Kognic: OpenLABEL as Kognic reads and writes it, and labels back.

Kognic's OpenLABEL differs from the ASAM text (and from ``openlabel/``,
:mod:`.openlabel`) in three conventions it documents:

- **cuboid rotation**: a cuboid with yaw 0 faces along **+y** (rotation order
  XYZ), not +x as in ISO 8855; so ``sx`` is the width and ``sy`` the length.
  A pipeline box (yaw ``θ`` from +x, length ``l``, width ``w``) is written as
  ``val = [x, y, z, q(θ - π/2), w, l, h]`` (centre, quaternion xyzw about +z,
  sizes), and read back by the inverse (Kognic's own ISO 8855 conversion:
  rotate by +π/2 about z and swap ``sx``/``sy``);
- **single frames are one-frame sequences**: the root ``objects`` hold only
  ``name`` and ``type``; every cuboid lives in ``frames["0"].objects``, with a
  ``stream`` text attribute naming the stream it was annotated in (``LIDAR``);
- **point clouds carry a timestamp field**: ``kognic/pointclouds/<stem>.pcd`` is
  a binary PCD with ``FIELDS x y z intensity timestamp``, ``SIZE 4 4 4 4 8``,
  ``TYPE F F F U U`` (intensity as an unsigned integer, the timestamp in
  nanoseconds: the frame's time for every point, as the catalog keeps no
  per-point time; Kognic's motion compensation is then a no-op).

The export (``kognic/<stem>.json``, one scene per frame) holds the LIDAR and
camera streams with their URIs (the point cloud's URI is its path in the drop
until uploaded), ``frame_properties.timestamp`` in nanoseconds and
``external_id`` (the frame id, also in ``metadata``), and the pre-labels with a
``score``. A delivery is a Kognic OpenLABEL export saved as ``*.kognic.json``
in the inbox (``ceal labels ingest --format kognic`` names it so): frames named
by ``frame_properties.external_id`` (or, for one frame, ``metadata.external_id``),
cuboids in ``LIDAR`` coordinates in Kognic's rotation convention.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ceal_pipeline.export.label_spec import LABEL_SPEC_VERSION
from ceal_pipeline.export.openlabel import (
    LIDAR_CS,
    MalformedDelivery,
    SCHEMA_VERSION,
    cuboid_val,
    parse_openlabel_delivery,
    parse_strictly,
    sensor_streams,
)
from ceal_pipeline.export.file_names import frame_file_stem
from ceal_pipeline.export.point_cloud_files import pcd_bytes
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor
from ceal_pipeline.export.vendor_tasks import FrameTask
from ceal_pipeline.frames.box_conventions import wrap_angle
from ceal_pipeline.frames.points import load_points

FOLDER = "kognic"
DELIVERY_SUFFIX = ".kognic.json"
#: Kognic's cuboid frame is ISO 8855's turned by +pi/2 about z: heading along +y.
_KOGNIC_YAW_OFFSET = math.pi / 2


def kognic_cuboid_val(centre_box: np.ndarray) -> list[float]:
    """Kognic's ``val`` of one centre-origin ``x y z l w h yaw`` box (see the module docstring)."""
    x, y, z, length, width, height, yaw = (float(v) for v in centre_box)
    return cuboid_val(np.array([x, y, z, width, length, height, yaw - _KOGNIC_YAW_OFFSET]))


def from_kognic_boxes(boxes: np.ndarray) -> np.ndarray:
    """Pipeline boxes decoded from Kognic cuboids as if ISO 8855 -> the boxes Kognic meant."""
    out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 7)
    out[:, [3, 4]] = out[:, [4, 3]]
    out[:, 6] = wrap_angle(out[:, 6] + _KOGNIC_YAW_OFFSET)
    return out


def kognic_pcd(points: np.ndarray, timestamp: int) -> bytes:
    """The PCD Kognic converts: ``x y z`` float32, ``intensity`` uint32, ``timestamp`` uint64 (ns)."""
    points = np.asarray(points, dtype=np.float32)
    intensity = np.clip(np.rint(np.nan_to_num(points[:, 3])), 0, np.iinfo(np.uint32).max).astype(np.uint32)
    return pcd_bytes([("x", points[:, 0]), ("y", points[:, 1]), ("z", points[:, 2]), ("intensity", intensity),
                      ("timestamp", np.full(len(points), timestamp, dtype=np.uint64))])


def _objects(boxes: np.ndarray, class_names: Sequence[str], scores=None) -> tuple[dict, dict]:
    root, frame = {}, {}
    for i, (box, name) in enumerate(zip(pipeline_boxes_to_vendor(boxes), class_names)):
        uid = str(i)
        root[uid] = {"name": f"{name}-{i}", "type": name}
        attributes: dict = {"text": [{"name": "stream", "val": LIDAR_CS}]}
        if scores is not None:
            attributes["num"] = [{"name": "score", "val": float(scores[i])}]
            attributes["boolean"] = [{"name": "pre_label", "val": True}]
        frame[uid] = {"object_data": {"cuboid": [{"name": f"cuboid-{i}", "val": kognic_cuboid_val(box),
                                                  "coordinate_system": LIDAR_CS, "attributes": attributes}]}}
    return root, frame


def kognic_scene(task: FrameTask, round_index: int, pcd_uri: str) -> dict:
    """The Kognic OpenLABEL document of one task (see the module docstring)."""
    record = task.record
    ts = task.timestamp_ns or 0  # Kognic requires a time; 0 where the source has none
    streams, coordinate_systems = sensor_streams(task, pcd_uri, "binary PCD: x y z intensity timestamp (ns)")
    frame: dict = {"frame_properties": {"timestamp": ts, "external_id": task.external_id,
                                        "streams": {name: {} for name in streams}}}
    document: dict = {
        "metadata": {"schema_version": SCHEMA_VERSION, "name": task.external_id, "external_id": task.external_id,
                     "sequence_id": record.sequence_id, "ceal_round": round_index,
                     "label_spec_version": LABEL_SPEC_VERSION},
        "coordinate_systems": coordinate_systems,
        "streams": streams,
        "frames": {"0": frame},
        "frame_intervals": [{"frame_start": 0, "frame_end": 0}],
        "objects": {},
    }
    pre = task.pre_labels
    if pre is not None and len(pre.boxes):
        document["objects"], frame["objects"] = _objects(pre.boxes, pre.class_names, pre.scores)
    return {"openlabel": document}


def kognic_files(tasks: Sequence[FrameTask], round_index: int) -> dict[str, bytes]:
    """Relative file name -> bytes of the Kognic scenes of ``tasks`` and their point clouds."""
    files = {}
    for task in tasks:
        stem = frame_file_stem(task.external_id)
        pcd = f"pointclouds/{stem}.pcd"
        files[f"{FOLDER}/{pcd}"] = kognic_pcd(load_points(task.record), task.timestamp_ns or 0)
        files[f"{FOLDER}/{stem}.json"] = (json.dumps(kognic_scene(task, round_index, pcd), indent=1,
                                                     allow_nan=False) + "\n").encode("utf-8")
    return files


def exported_frame_ids(folder: Path) -> list[str]:
    return [json.loads(p.read_text())["openlabel"]["metadata"]["external_id"]
            for p in sorted((folder / FOLDER).glob("*.json"))]


def kognic_delivery(labels: Mapping[str, tuple[np.ndarray, tuple[str, ...]]], annotator: str) -> dict:
    """A Kognic-convention OpenLABEL document of ``labels`` (frame id -> pipeline boxes, class names),
    one frame per labeled frame: what the self-check and tests deliver in place of Kognic."""
    frames, objects, uid = {}, {}, 0
    for index, (frame_id, (boxes, names)) in enumerate(labels.items()):
        root, frame_objects = _objects(np.asarray(boxes, np.float64).reshape(-1, 7), names)
        renamed = {}
        for key in root:
            objects[str(uid)], renamed[str(uid)] = root[key], frame_objects[key]
            uid += 1
        frames[str(index)] = {"frame_properties": {"external_id": frame_id}, "objects": renamed}
    return {"openlabel": {"metadata": {"schema_version": SCHEMA_VERSION, "annotator": annotator},
                          "objects": objects, "frames": frames}}


def read_kognic(path: str | Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Frame id -> (pipeline boxes, class names) of a Kognic OpenLABEL delivery."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise MalformedDelivery(f"{path}: not readable JSON ({exc})") from None
    labels = parse_strictly(parse_openlabel_delivery, payload, Path(path))
    return {f: (from_kognic_boxes(boxes), names) for f, (boxes, names) in labels.items()}
