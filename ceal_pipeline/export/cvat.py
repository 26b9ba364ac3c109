"""CVAT 3D tasks in CVAT's ``Kitti Raw Format 1.0`` (Datumaro's ``kitti_raw``), and labels back.

The export (``cvat_kitti_raw/`` in the drop; zip that folder and create a CVAT
task of type 3D from it, then upload ``tracklet_labels.xml`` as annotations in
"Kitti Raw Format 1.0" to see the pre-labels):

- ``velodyne_points/data/<stem>.pcd``: the frame's LiDAR points as binary PCD
  (``x y z intensity``, float32, LiDAR frame), converted from the catalog's file;
- ``image_NN/data/<stem>.<ext>``: camera ``NN`` of the frame (CVAT's related images);
- ``frame_list.txt``: ``<index> <stem>`` per frame, the index in rank order;
- ``tracklet_labels.xml``: the pre-labels, one tracklet of one pose per box;
- ``labels.json``: the CVAT labels to create the task with (one ``cuboid`` label per class);
- ``pre_label_scores.json``: stem -> the detector's score per tracklet of that frame, in order.

``<stem>`` is :func:`.file_names.frame_file_stem` of the frame id, so a
CVAT export that names frames by their file names gives the frame ids back.

Cuboids, as CVAT reads and writes them through Datumaro's ``Cuboid3d``
(position, rotation, scale): ``tx ty tz`` the *centre* of the cuboid in the
LiDAR frame, ``rx ry rz`` Euler angles (only ``rz``, the yaw about +z from +x,
is used), and the tags ``h w l`` holding CVAT's scale ``sx sy sz`` in that
order, i.e. length (along the heading), width, height. (The tag names come from
KITTI, where they meant height, width, length; CVAT keeps the tags and stores
its own scale in them, so a real KITTI tracklet file is not read by these rules.)

A delivery is CVAT's export of the task in the same format: a ``.zip`` with
``tracklet_labels.xml`` and ``frame_list.txt``. Every frame in ``frame_list.txt``
was labeled (a frame without a tracklet holds no object); a tracklet with
several poses places pose ``i`` on frame ``first_frame + i``; a pose whose
``truncation`` is 2 or 99 (outside / behind the image) is CVAT's "outside" and
holds no cuboid.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ceal_pipeline.export.openlabel import MalformedDelivery
from ceal_pipeline.export.file_names import frame_file_stem, frame_id_of_stem
from ceal_pipeline.export.point_cloud_files import xyzi_pcd
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor, vendor_boxes_to_pipeline
from ceal_pipeline.export.vendor_tasks import FrameTask
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.records import DETECTION_CLASSES

FOLDER = "cvat_kitti_raw"
TRACKLETS_NAME = "tracklet_labels.xml"
FRAME_LIST_NAME = "frame_list.txt"
PCD_DIR = "velodyne_points/data"
#: KITTI pose ``truncation`` values CVAT writes for a track outside the frame.
_OUTSIDE = {"2", "99"}


def _element(parent: ElementTree.Element, tag: str, text=None, **attributes) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, tag, {k: str(v) for k, v in attributes.items()})
    if text is not None:
        child.text = repr(float(text)) if isinstance(text, (float, np.floating)) else str(text)
    return child


def tracklets_xml(frames: Sequence[tuple[np.ndarray, Sequence[str]]]) -> bytes:
    """``tracklet_labels.xml`` of pipeline boxes per frame (frame ``i`` = index ``i`` of ``frame_list.txt``)."""
    root = ElementTree.Element("boost_serialization", {"signature": "serialization::archive", "version": "9"})
    tracklets = _element(root, "tracklets", class_id=0, tracking_level=0, version=0)
    items = [(index, box, name) for index, (boxes, names) in enumerate(frames)
             for box, name in zip(pipeline_boxes_to_vendor(np.asarray(boxes, np.float64).reshape(-1, 7)), names)]
    _element(tracklets, "count", len(items))
    _element(tracklets, "item_version", 1)
    for n, (index, box, name) in enumerate(items):
        header = {"class_id": 1, "tracking_level": 0, "version": 1} if n == 0 else {}
        item = _element(tracklets, "item", **header)
        x, y, z, length, width, height, yaw = (float(v) for v in box)
        _element(item, "objectType", name)
        for tag, value in (("h", length), ("w", width), ("l", height)):  # CVAT's scale sx, sy, sz in KITTI's tags
            _element(item, tag, value)
        _element(item, "first_frame", index)
        poses = _element(item, "poses", **({"class_id": 2, "tracking_level": 0, "version": 0} if n == 0 else {}))
        _element(poses, "count", 1)
        _element(poses, "item_version", 2)
        pose = _element(poses, "item", **({"class_id": 3, "tracking_level": 0, "version": 2} if n == 0 else {}))
        for tag, value in (("tx", x), ("ty", y), ("tz", z), ("rx", 0.0), ("ry", 0.0), ("rz", yaw)):
            _element(pose, tag, value)
        for tag, value in (("state", 1), ("occlusion", -1), ("occlusion_kf", 0), ("truncation", -1),
                           ("amt_occlusion", -1), ("amt_occlusion_kf", -1), ("amt_border_l", -1),
                           ("amt_border_r", -1), ("amt_border_kf", -1)):
            _element(pose, tag, value)
        _element(item, "finished", 1)
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    # standalone="yes": Datumaro's reader refuses KITTI's original standalone="true".
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>\n<!DOCTYPE boost_serialization>\n'
            + body + "\n").encode("utf-8")


def cvat_labels() -> list[dict]:
    """The labels a CVAT task is created with: one ``cuboid`` label per ontology class."""
    return [{"name": name, "type": "cuboid", "attributes": []} for name in DETECTION_CLASSES]


def cvat_files(tasks: Sequence[FrameTask]) -> dict[str, bytes]:
    """Relative file name (under :data:`FOLDER`) -> bytes of the CVAT task of ``tasks`` (rank order)."""
    files: dict[str, bytes] = {}
    stems = [frame_file_stem(t.external_id) for t in tasks]
    frames, scores = [], {}
    for task, stem in zip(tasks, stems):
        files[f"{FOLDER}/{PCD_DIR}/{stem}.pcd"] = xyzi_pcd(load_points(task.record))
        for index, camera in enumerate(task.record.cameras):
            image = Path(camera.path)
            if not image.is_file():
                raise ValueError(f"frame {task.external_id}: camera {camera.name} image {image} does not exist; "
                                 "a CVAT 3D task carries every related image: restore the file")
            files[f"{FOLDER}/image_{index:02d}/data/{stem}{image.suffix.lower() or '.jpg'}"] = image.read_bytes()
        pre = task.pre_labels
        frames.append((np.zeros((0, 7)), ()) if pre is None else (pre.boxes, pre.class_names))
        scores[stem] = [] if pre is None else [float(s) for s in pre.scores]
    files[f"{FOLDER}/{FRAME_LIST_NAME}"] = "".join(f"{i} {stem}\n" for i, stem in enumerate(stems)).encode("utf-8")
    files[f"{FOLDER}/{TRACKLETS_NAME}"] = tracklets_xml(frames)
    files[f"{FOLDER}/labels.json"] = (json.dumps(cvat_labels(), indent=1) + "\n").encode("utf-8")
    files[f"{FOLDER}/pre_label_scores.json"] = (json.dumps(scores, indent=1) + "\n").encode("utf-8")
    return files


def exported_frame_ids(folder: Path) -> list[str]:
    """The frame ids of a drop's CVAT task (from ``frame_list.txt``)."""
    text = (folder / FOLDER / FRAME_LIST_NAME).read_text()
    return [frame_id_of_stem(line.split(maxsplit=1)[1]) for line in text.splitlines() if line.strip()]


def cvat_delivery(labels: Mapping[str, tuple[np.ndarray, tuple[str, ...]]]) -> bytes:
    """A CVAT export (``.zip``) of ``labels`` (frame id -> pipeline boxes, class names): what the
    self-check and tests deliver in place of CVAT."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(FRAME_LIST_NAME, "".join(f"{i} {frame_file_stem(f)}\n" for i, f in enumerate(labels)))
        archive.writestr(TRACKLETS_NAME, tracklets_xml(list(labels.values())))
    return buffer.getvalue()


def _number(element, tag: str, path: Path, where: str) -> float:
    child = element.find(tag)
    if child is None or child.text is None:
        raise MalformedDelivery(f"{path}: {where} has no <{tag}>")
    try:
        return float(child.text)
    except ValueError:
        raise MalformedDelivery(f"{path}: {where} <{tag}> is {child.text!r}, not a number") from None


def _frame_list(text: str, path: Path) -> list[str]:
    frame_ids: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise MalformedDelivery(f"{path}: {FRAME_LIST_NAME} line {number} is not '<index> <name>': {line!r}")
        try:
            frame_ids[int(parts[0])] = frame_id_of_stem(Path(parts[1].strip()).name)
        except ValueError as exc:
            raise MalformedDelivery(f"{path}: {FRAME_LIST_NAME} line {number}: {exc}") from None
    if sorted(frame_ids) != list(range(len(frame_ids))):
        raise MalformedDelivery(f"{path}: {FRAME_LIST_NAME} indices must be 0..{len(frame_ids) - 1}")
    return [frame_ids[i] for i in range(len(frame_ids))]


def parse_tracklets(xml: bytes, frame_ids: Sequence[str], path: Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Frame id -> (pipeline boxes, class names) of a ``tracklet_labels.xml`` over ``frame_ids``."""
    from defusedxml import ElementTree as SafeElementTree  # a delivery is untrusted: no entity expansion

    try:
        root = SafeElementTree.fromstring(xml)
    except Exception as exc:  # ParseError and defusedxml's refusals
        raise MalformedDelivery(f"{path}: {TRACKLETS_NAME} is not readable XML ({type(exc).__name__}: {exc})") from None
    tracklets = root.find("tracklets") if root.tag == "boost_serialization" else None
    if tracklets is None:
        raise MalformedDelivery(f"{path}: {TRACKLETS_NAME} has no <boost_serialization><tracklets>")
    centres: dict[str, list[list[float]]] = {f: [] for f in frame_ids}
    names: dict[str, list[str]] = {f: [] for f in frame_ids}
    for n, item in enumerate(tracklets.findall("item")):
        where = f"tracklet {n}"
        label = (item.findtext("objectType") or "").strip()
        sizes = [_number(item, tag, path, where) for tag in ("h", "w", "l")]
        first = int(_number(item, "first_frame", path, where))
        poses = item.find("poses")
        for i, pose in enumerate([] if poses is None else poses.findall("item")):
            if (pose.findtext("truncation") or "").strip() in _OUTSIDE:
                continue
            if not 0 <= first + i < len(frame_ids):
                raise MalformedDelivery(f"{path}: {where} pose {i} is on frame {first + i}, but "
                                        f"{FRAME_LIST_NAME} lists {len(frame_ids)} frames")
            values = [_number(pose, tag, path, f"{where} pose {i}") for tag in ("tx", "ty", "tz", "rz")]
            frame_id = frame_ids[first + i]
            centres[frame_id].append(values[:3] + sizes + values[3:])
            names[frame_id].append(label)
    return {f: vendor_boxes_to_pipeline(np.asarray(centres[f], np.float64).reshape(-1, 7), names[f],
                                        where=f"{path} frame {f}") for f in frame_ids}


def read_cvat_kitti_raw(path: str | Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Read CVAT's Kitti Raw export (a ``.zip``); raises :class:`MalformedDelivery` naming the file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(n).name: n for n in archive.namelist() if n.count("/") <= 1}
            missing = [n for n in (TRACKLETS_NAME, FRAME_LIST_NAME) if n not in members]
            if missing:
                raise MalformedDelivery(f"{path}: a CVAT Kitti Raw export holds {TRACKLETS_NAME} and "
                                        f"{FRAME_LIST_NAME} at its top; {missing} missing (export the task "
                                        "in 'Kitti Raw Format 1.0')")
            xml = archive.read(members[TRACKLETS_NAME])
            frame_list = archive.read(members[FRAME_LIST_NAME]).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise MalformedDelivery(f"{path}: not a readable zip ({exc})") from None
    return parse_tracklets(xml, _frame_list(frame_list, path), path)


def is_cvat_zip(path: Path) -> bool:
    """Whether ``path`` is a zip holding a ``tracklet_labels.xml``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(Path(n).name == TRACKLETS_NAME for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False

