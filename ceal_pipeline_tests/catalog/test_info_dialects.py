"""Specification of the info-file dialects seen in the wild, and of labels that name no class.

mmdet3d's own fixtures and older converters write ``metainfo`` keys in other
cases (``DATASET: KITTI``), no ``categories`` and ``sample_id`` instead of
``sample_idx``; each small file here is hand-written in one dialect.
"""

from __future__ import annotations

import json
import pickle

import numpy as np

from ceal_pipeline.catalog import FrameCatalog
from ceal_pipeline.cli import main as ceal
from ceal_pipeline.frames import mmdet3d_info
from ceal_pipeline.frames.records import DETECTION_CLASSES

#: LiDAR-frame, bottom-centre boxes of a pedestrian, a cyclist and a car.
BOXES = [[8.0, 2.0, -1.7, 0.6, 0.6, 1.7, 0.0], [12.0, -3.0, -1.7, 1.8, 0.6, 1.6, 0.5],
         [20.0, 1.0, -1.7, 4.2, 1.8, 1.5, -0.3]]


def _write(root, metainfo: dict, entries: list[dict], name: str = "infos.pkl"):
    root.mkdir(parents=True, exist_ok=True)
    np.zeros((10, 4), np.float32).tofile(root / "cloud.bin")
    (root / name).write_bytes(pickle.dumps({"metainfo": metainfo, "data_list": entries}))
    return root / name


def _entry(frame_key: str, value, labels=(0, 1, 2)) -> dict:
    return {frame_key: value, "lidar_points": {"num_pts_feats": 4, "lidar_path": "cloud.bin"},
            "instances": [{"bbox_3d": box, "bbox_label_3d": label} for box, label in zip(BOXES, labels)]}


def test_upper_case_dataset_key_and_sample_id_are_read_with_the_datasets_classes(tmp_path):
    # as mmdet3d's KITTI fixtures: 'DATASET': 'KITTI', no categories, 'sample_id'; LiDAR-frame boxes here
    _write(tmp_path, {"DATASET": "KITTI"}, [_entry("sample_id", 7), _entry("sample_id", 8)])
    result = mmdet3d_info.read_frames(tmp_path, box_frame="lidar")
    assert [f.frame_id for f in result.frames] == ["7", "8"]
    assert [DETECTION_CLASSES[i] for i in result.frames[0].labels] == ["pedestrian", "cyclist", "car"]
    assert result.frames[0].source == "KITTI" and not result.unnamed_labels


def test_classes_key_names_the_labels_when_categories_are_missing(tmp_path):
    _write(tmp_path, {"dataset": "fleet-2024", "classes": ["Car", "Truck", "Cone"]},
           [_entry("sample_idx", 0, labels=(0, 1, 2))])
    (frame,) = mmdet3d_info.read_frames(tmp_path).frames
    assert [DETECTION_CLASSES[i] for i in frame.labels] == ["car", "truck"]


def test_lower_case_keys_win_over_their_upper_case_twins():
    assert mmdet3d_info.normalise_metainfo({"DATASET": "KITTI", "dataset": "kitti", "Classes": ["a"]}) == {
        "dataset": "kitti", "classes": ["a"]}


def test_unnamed_labels_are_reported_loudly_by_the_catalog_never_as_silent_zero_boxes(tmp_path):
    source = tmp_path / "source"
    _write(source, {"dataset": "fleet-2024"}, [_entry("token", "f1"), _entry("token", "f2", labels=(0, 0, 5))])
    catalog = FrameCatalog(tmp_path / "catalog")
    report = catalog.ingest("mmdet3d", source)
    info = str((source / "infos.pkl").resolve())
    assert report.unnamed_labels == {info: {0: 3, 1: 1, 2: 1, 5: 1}}
    (warning,) = [w for w in report.warnings if "no class name" in w]
    assert "6 objects" in warning and "0 (x3)" in warning and "5 (x1)" in warning
    assert "categories" in warning and "classes=" in warning
    assert report.boxes == 0

    # the fix the message names works
    fixed = catalog.ingest("mmdet3d", source, classes=["Pedestrian", "Cyclist", "Car", "Van", "Truck", "Bus"])
    assert not fixed.unnamed_labels and fixed.boxes == 6 and fixed.frames_changed == 2
    assert [DETECTION_CLASSES[i] for i in catalog.records(["f2"])[0].labels] == ["pedestrian", "pedestrian", "truck"]


def test_ceal_inspect_reports_unnamed_labels_loudly(tmp_path, capsys):
    _write(tmp_path, {"DATASET": "fleet-2024"}, [_entry("sample_id", 1)])
    assert ceal(["inspect", "--source", "mmdet3d", "--root", str(tmp_path), "--check", "exists", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["unnamed_labels"] == {"0": 1, "1": 1, "2": 1} and summary["boxes"] == 0
    assert "WARNING" in captured.err and "3 objects" in captured.err and "--classes" in captured.err

    assert ceal(["inspect", "--source", "mmdet3d", "--root", str(tmp_path), "--check", "exists", "--json",
                 "--classes", "Pedestrian,Cyclist,Car"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unnamed_labels"] == {} and summary["boxes"] == 3


def test_kitti_fixture_dialect_with_camera_frame_boxes_is_read_into_the_lidar_frame(tmp_path):
    lidar2cam = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]])
    box = np.array(BOXES[2])
    xyz = lidar2cam[:3, :3] @ box[:3]
    camera_box = [*xyz, box[3], box[5], box[4], -box[6] - np.pi / 2]
    entry = {"sample_id": 3, "lidar_points": {"num_pts_feats": 4, "lidar_path": "cloud.bin"},
             "images": {"CAM2": {"cam2img": np.eye(3).tolist(), "lidar2cam": lidar2cam.tolist()}},
             "instances": [{"bbox_3d": camera_box, "bbox_label_3d": 2}]}
    _write(tmp_path, {"DATASET": "KITTI"}, [entry])
    (frame,) = mmdet3d_info.read_frames(tmp_path).frames
    np.testing.assert_allclose(frame.boxes[0, :6], box[:6], atol=1e-5)
    assert DETECTION_CLASSES[frame.labels[0]] == "car"
