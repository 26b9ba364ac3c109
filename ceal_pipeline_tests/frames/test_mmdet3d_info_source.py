"""Specification of the mmdet3d v1.x info-file reader: nuScenes sample, KITTI- and
Waymo-style infos built here, and the quarantine path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ceal_pipeline.frames import mmdet3d_info
from ceal_pipeline.frames.box_conventions import wrap_angle
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES

KITTI_LIDAR2CAM = np.array([
    [7.5e-03, -9.9997e-01, -6.2e-04, -2.7e-03],
    [1.5e-02, 7.3e-04, -9.9989e-01, -7.6e-02],
    [9.9986e-01, 7.5e-03, 1.5e-02, -2.7e-01],
    [0.0, 0.0, 0.0, 1.0],
])
KITTI_P2 = np.array([[721.5, 0.0, 609.6, 44.9], [0.0, 721.5, 172.9, 0.2], [0.0, 0.0, 1.0, 0.003], [0, 0, 0, 1.0]])
#: LiDAR-frame bottom-centre boxes: a car ahead-left and a cyclist ahead-right.
TRUE_BOXES = np.array([[15.0, 3.0, -1.7, 4.2, 1.8, 1.5, 0.4], [9.0, -4.0, -1.7, 1.8, 0.7, 1.7, -1.2]])


def _lidar_to_camera_boxes(boxes: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """Inverse of the reader's conversion, written independently for the test."""
    xyz = boxes[:, :3] @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    heading = np.column_stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))]) @ lidar2cam[:3, :3].T
    ry = np.arctan2(-heading[:, 2], heading[:, 0])
    return np.column_stack([xyz, boxes[:, 3], boxes[:, 5], boxes[:, 4], ry])


def _points_in(boxes: np.ndarray, rng: np.random.Generator, per_box: int = 60) -> np.ndarray:
    clouds = []
    for x, y, z, length, width, height, yaw in boxes:
        local = rng.uniform(-0.45, 0.45, (per_box, 3)) * [length, width, height] + [0, 0, height / 2]
        c, s = np.cos(yaw), np.sin(yaw)
        clouds.append(np.column_stack([x + local[:, 0] * c - local[:, 1] * s, y + local[:, 0] * s + local[:, 1] * c,
                                       z + local[:, 2], rng.uniform(0, 1, per_box)]))
    ground = np.column_stack([rng.uniform(0, 40, (500, 1)), rng.uniform(-10, 10, (500, 1)), np.full((500, 1), -1.75),
                              np.zeros((500, 1))])
    return np.concatenate(clouds + [ground]).astype(np.float32)


def _write_kitti_like(root: Path, n_frames: int = 3) -> Path:
    rng = np.random.default_rng(0)
    (root / "velodyne").mkdir(parents=True)
    (root / "image_2").mkdir()
    data_list = []
    for i in range(n_frames):
        _points_in(TRUE_BOXES, rng).tofile(root / "velodyne" / f"{i:06d}.bin")
        Image.new("RGB", (64, 20)).save(root / "image_2" / f"{i:06d}.png")
        cam_boxes = _lidar_to_camera_boxes(TRUE_BOXES, KITTI_LIDAR2CAM)
        data_list.append({
            "sample_idx": i,
            "images": {"CAM0": {"cam2img": np.eye(4).tolist()},
                       "CAM2": {"img_path": f"{i:06d}.png", "cam2img": KITTI_P2.tolist(),
                                "lidar2cam": KITTI_LIDAR2CAM.tolist(), "height": 20, "width": 64}},
            "lidar_points": {"num_pts_feats": 4, "lidar_path": f"{i:06d}.bin"},
            "instances": [{"bbox_3d": cam_boxes[0].tolist(), "bbox_label_3d": 2},  # Car
                          {"bbox_3d": cam_boxes[1].tolist(), "bbox_label_3d": 1},  # Cyclist
                          {"bbox_3d": cam_boxes[0].tolist(), "bbox_label_3d": -1}],  # DontCare
        })
    metainfo = {"categories": {"Pedestrian": 0, "Cyclist": 1, "Car": 2, "Van": 3, "Truck": 4, "Person_sitting": 5,
                               "Tram": 6, "Misc": 7, "DontCare": -1}, "dataset": "kitti", "info_version": "1.1"}
    info = root / "kitti_infos_val.pkl"
    info.write_bytes(pickle.dumps({"metainfo": metainfo, "data_list": data_list}))
    return info


def test_nuscenes_sample_reads_one_frame_with_its_points_and_mapped_boxes(nuscenes_sample):
    result = mmdet3d_info.read_frames(nuscenes_sample)
    (frame,) = result.frames
    assert result.quarantined == []
    assert frame.frame_id == "ca9a282c9e77460f8360f564131a8af5"
    assert frame.sequence_id == "n015-2018-07-24-11-22-45+0800"  # the log name in the file name
    assert frame.timestamp == pytest.approx(1532402927.647951)
    assert load_points(frame).shape == (34688, 4)  # 5 features on disk, x y z intensity kept
    assert len(frame.cameras) == 6 and all((c.width, c.height) == (1600, 900) for c in frame.cameras)
    # 69 instances: 22 barriers, 3 traffic cones and one ignored (-1) object are dropped
    assert len(frame.boxes) == 43
    assert result.dropped_objects == {"barrier": 22, "traffic_cone": 3, "ignored (-1)": 1}
    assert np.bincount(frame.labels, minlength=4).tolist() == [8, 4, 30, 1]


def test_nuscenes_centre_origin_boxes_become_bottom_centred_and_hold_their_points(nuscenes_sample):
    (frame,) = mmdet3d_info.read_frames(nuscenes_sample).frames
    counts = count_points_in_boxes(load_points(frame), frame.boxes)
    near = np.hypot(frame.boxes[:, 0], frame.boxes[:, 1]) <= 50
    assert near.sum() >= 20 and (counts[near] > 0).mean() >= 0.7
    raw = pickle.loads((next(nuscenes_sample.glob("*.pkl"))).read_bytes())["data_list"][0]["instances"][0]
    assert frame.boxes[0, 2] == pytest.approx(raw["bbox_3d"][2] - raw["bbox_3d"][5] / 2, abs=1e-5)


def test_kitti_camera_frame_boxes_are_converted_with_inverse_lidar2cam(tmp_path):
    _write_kitti_like(tmp_path)
    result = mmdet3d_info.read_frames(tmp_path, lidar_prefix="velodyne", camera_prefix="image_2")
    assert len(result.frames) == 3 and result.quarantined == []
    assert result.dropped_objects == {"ignored (-1)": 3}
    frame = result.frames[0]
    assert frame.split == "val" and frame.timestamp == 0.0  # KITTI records no time: 0 s, stated
    np.testing.assert_allclose(frame.boxes[:, :6], TRUE_BOXES[:, :6], atol=1e-4)
    # the camera heading drops the tiny out-of-plane part of the calibration rotation: 1e-4 rad
    np.testing.assert_allclose(wrap_angle(frame.boxes[:, 6] - TRUE_BOXES[:, 6]), 0, atol=1e-3)
    assert [DETECTION_CLASSES[i] for i in frame.labels] == ["car", "cyclist"]
    assert (count_points_in_boxes(load_points(frame), frame.boxes) == 60).all()


def test_kitti_projection_offset_is_folded_into_the_extrinsic(tmp_path):
    _write_kitti_like(tmp_path, n_frames=1)
    (camera,) = mmdet3d_info.read_frames(tmp_path, lidar_prefix="velodyne", camera_prefix="image_2").frames[0].cameras
    point = np.array([20.0, 1.0, -0.5, 1.0])
    expected = (KITTI_P2 @ KITTI_LIDAR2CAM @ point)[:3]
    projected = camera.cam2img @ (camera.lidar2cam @ point)[:3]
    np.testing.assert_allclose(projected[:2] / projected[2], expected[:2] / expected[2], rtol=1e-9)


def test_waymo_v14_infos_are_already_in_the_lidar_frame_and_name_classes_by_dataset(tmp_path):
    rng = np.random.default_rng(1)
    _points_in(TRUE_BOXES, rng).tofile(tmp_path / "1000000.bin")
    entry = {"sample_idx": 1000000, "timestamp": 1553629304266590, "context_name": "segment-42",
             "lidar_points": {"num_pts_feats": 4, "lidar_path": "1000000.bin"}, "images": {},
             "instances": [{"bbox_3d": TRUE_BOXES[0].tolist(), "bbox_label_3d": 0},
                           {"bbox_3d": TRUE_BOXES[1].tolist(), "bbox_label_3d": 2}]}
    metainfo = {"dataset": "waymo", "version": "waymo_v1.4", "info_version": "mmdet3d_v1.4"}
    (tmp_path / "waymo_infos_train.pkl").write_bytes(pickle.dumps({"metainfo": metainfo, "data_list": [entry]}))
    (frame,) = mmdet3d_info.read_frames(tmp_path).frames
    np.testing.assert_allclose(frame.boxes, TRUE_BOXES, atol=1e-6)
    assert [DETECTION_CLASSES[i] for i in frame.labels] == ["car", "cyclist"]
    assert frame.sequence_id == "segment-42" and frame.timestamp == pytest.approx(1553629304.26659)


def test_missing_or_truncated_lidar_file_quarantines_that_frame_and_reading_goes_on(tmp_path):
    _write_kitti_like(tmp_path)
    (tmp_path / "velodyne" / "000000.bin").unlink()
    truncated = tmp_path / "velodyne" / "000001.bin"
    truncated.write_bytes(truncated.read_bytes()[:-6])
    result = mmdet3d_info.read_frames(tmp_path, lidar_prefix="velodyne", camera_prefix="image_2")
    assert [f.frame_id for f in result.frames] == ["2"]
    reasons = {q.frame_id: q.reason for q in result.quarantined}
    assert "000000.bin is missing" in reasons["0"]
    assert "not a positive multiple" in reasons["1"] and "num_pts_feats" in reasons["1"]
    assert {q.frame_id: q.path for q in result.quarantined}["0"] == str(tmp_path / "velodyne" / "000000.bin")


def test_missing_camera_image_quarantines_the_frame(tmp_path):
    _write_kitti_like(tmp_path, n_frames=2)
    (tmp_path / "image_2" / "000001.png").unlink()
    result = mmdet3d_info.read_frames(tmp_path, lidar_prefix="velodyne", camera_prefix={"CAM2": "image_2"})
    (bad,) = result.quarantined
    assert bad.frame_id == "1" and "000001.png is missing" in bad.reason
    assert bad.path == str(tmp_path / "image_2" / "000001.png")


def test_old_list_style_info_file_is_rejected_with_the_conversion_hint(tmp_path):
    (tmp_path / "old.pkl").write_bytes(pickle.dumps([{"point_cloud": {}}]))
    with pytest.raises(mmdet3d_info.InfoFileError, match="update_infos_to_v2"):
        mmdet3d_info.read_frames(tmp_path)


def test_entry_without_instances_is_unlabeled(tmp_path):
    rng = np.random.default_rng(2)
    _points_in(TRUE_BOXES, rng).tofile(tmp_path / "a.bin")
    entry = {"token": "frame-a", "lidar_points": {"num_pts_feats": 4, "lidar_path": "a.bin"}}
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"metainfo": {}, "data_list": [entry]}))
    (frame,) = mmdet3d_info.read_frames(tmp_path).frames
    assert not frame.is_labeled and frame.sequence_id == "frame-a"


def test_missing_info_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="--info"):
        mmdet3d_info.read_frames(tmp_path, info="nope.pkl")
    with pytest.raises(FileNotFoundError, match="no \\*.pkl"):
        mmdet3d_info.read_frames(tmp_path)
