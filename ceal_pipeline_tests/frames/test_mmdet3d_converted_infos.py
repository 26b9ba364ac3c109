"""Specification: info files written by mmdet3d's own converters are read into boxes that sit on their points.

A small dataset is written in KITTI's raw layout (:mod:`.kitti_raw`: calibration
that is not the ideal axis permutation, labels in the rectified camera frame,
LiDAR points sampled on each labeled object's surface). mmdet3d's converters,
as the installed mmdet3d ships them (``mmdet3d/.mim/tools/dataset_converters``),
turn it into infos: ``create_kitti_info_file`` (the pre-v2 list), then
``update_infos_to_v2`` (the v2 ``{'metainfo', 'data_list'}`` file). The reader
must give every box the LiDAR points it was sampled from and the heading of
those points' long axis.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.frames import mmdet3d_info
from ceal_pipeline.frames.points import load_points
from ceal_pipeline_tests.frames.box_masks import points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline_tests.frames import kitti_raw

pytestmark = pytest.mark.mmdet3d

#: The heading of a box against the long axis of its points (radians): the PCA of
#: 400 surface points of a box at least 1.6 times longer than wide is within ~3 degrees;
#: a swapped axis, a mirrored heading or an unrotated camera yaw is off by 10-90 degrees
#: at these objects' headings (the exact check against the placed boxes follows).
AXIS_TOLERANCE = np.deg2rad(5.0)

_CONVERT = """
import sys
from pathlib import Path
import mmdet3d
sys.path.insert(0, str(Path(mmdet3d.__file__).parent / ".mim"))
from tools.dataset_converters import kitti_converter
from tools.dataset_converters.update_infos_to_v2 import update_pkl_infos
root, out = sys.argv[1], sys.argv[2]
kitti_converter.create_kitti_info_file(root, "kitti", with_plane=False, relative_path=True)
for split in ("train", "val"):
    update_pkl_infos("kitti", out_dir=out, pkl_path=str(Path(root) / f"kitti_infos_{split}.pkl"))
"""


def run_mmdet3d_kitti_converters(root: Path) -> Path:
    """Run mmdet3d's KITTI converter and ``update_infos_to_v2`` on ``root``; the folder of the v2 infos."""
    out = root / "v2"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", _CONVERT, str(root), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"mmdet3d's converters failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory) -> Path:
    root = kitti_raw.write_kitti_raw(tmp_path_factory.mktemp("kitti"))
    run_mmdet3d_kitti_converters(root)
    return root


def _expected(frame_index: int) -> tuple[np.ndarray, list[str]]:
    objects = kitti_raw.FRAMES[frame_index]
    return np.array([o.box for o in objects]), [o.kind for o in objects]


def test_kitti_infos_from_mmdet3d_are_v2_with_r0_rect_beside_the_cameras(kitti_root):
    info = pickle.loads((kitti_root / "v2" / "kitti_infos_train.pkl").read_bytes())
    entry = info["data_list"][0]
    assert info["metainfo"]["dataset"] == "kitti" and info["metainfo"]["categories"]["DontCare"] == -1
    assert isinstance(entry["images"]["R0_rect"], list) and "Tr_velo_to_cam" in entry["lidar_points"]
    assert "timestamp" not in entry and "ego2global" not in entry


def test_every_box_of_mmdet3d_kitti_infos_holds_its_points_and_heads_along_their_long_axis(kitti_root):
    result = mmdet3d_info.read_frames(kitti_root, info=["v2/kitti_infos_train.pkl", "v2/kitti_infos_val.pkl"],
                                      check="points")
    assert not result.quarantined
    assert [f.frame_id for f in result.frames] == ["0", "1", "2"]
    assert [f.split for f in result.frames] == ["train", "train", "val"]
    assert result.dropped_objects == {"ignored (-1)": 3}  # one DontCare per frame
    for index, frame in enumerate(result.frames):
        boxes, kinds = _expected(index)
        assert frame.sequence_id == frame.frame_id and frame.timestamp == 0.0  # KITTI: no sequence, no time
        assert [DETECTION_CLASSES[i] for i in frame.labels] == [
            {"Car": "car", "Van": "car", "Cyclist": "cyclist", "Pedestrian": "pedestrian"}[k] for k in kinds]
        points = load_points(frame)
        inside = points_in_boxes(points, frame.boxes)
        for k, box in enumerate(frame.boxes):
            assert inside[:, k].sum() >= 380, f"frame {index} box {k}: {inside[:, k].sum()} points inside"
            axis = kitti_raw.long_axis_yaw(points[inside[:, k]])
            assert kitti_raw.axis_difference(axis, float(box[6])) < AXIS_TOLERANCE
        # the boxes placed in the LiDAR frame come back: centre to 1 cm, sizes exact, heading to 1e-3 rad
        np.testing.assert_allclose(frame.boxes[:, :3], boxes[:, :3], atol=0.01)
        np.testing.assert_allclose(frame.boxes[:, 3:6], boxes[:, 3:6], atol=1e-3)
        np.testing.assert_allclose(np.angle(np.exp(1j * (frame.boxes[:, 6] - boxes[:, 6]))), 0.0, atol=1e-3)


def test_kitti_dialect_is_recognised_by_structure_when_the_metainfo_names_no_dataset(kitti_root, tmp_path):
    info = pickle.loads((kitti_root / "v2" / "kitti_infos_train.pkl").read_bytes())
    info["metainfo"] = {}  # no dataset name, no categories: R0_rect alone says KITTI
    (kitti_root / "v2" / "anonymous_infos_train.pkl").write_bytes(pickle.dumps(info))
    named = mmdet3d_info.read_frames(kitti_root, info="v2/kitti_infos_train.pkl", check="exists")
    anonymous = mmdet3d_info.read_frames(kitti_root, info="v2/anonymous_infos_train.pkl", check="exists")
    for a, b in zip(named.frames, anonymous.frames):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert anonymous.frames[0].source == "kitti"


def test_camera_to_lidar_conversion_agrees_with_mmdet3d_camera_boxes(kitti_root):
    import torch
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes

    from ceal_pipeline.frames.box_conventions import camera_boxes_to_lidar

    info = pickle.loads((kitti_root / "v2" / "kitti_infos_train.pkl").read_bytes())
    for entry in info["data_list"]:
        lidar2cam = np.array(entry["images"]["CAM2"]["lidar2cam"], dtype=np.float64)
        camera = np.array([i["bbox_3d"] for i in entry["instances"] if i["bbox_label_3d"] >= 0])
        ours = camera_boxes_to_lidar(camera, lidar2cam)
        boxes = CameraInstance3DBoxes(torch.tensor(camera, dtype=torch.float32), origin=(0.5, 1.0, 0.5))
        cam2lidar = torch.tensor(np.linalg.inv(lidar2cam), dtype=torch.float32)
        corrected = boxes.convert_to(Box3DMode.LIDAR, cam2lidar, correct_yaw=True).tensor.numpy()
        default = boxes.convert_to(Box3DMode.LIDAR, cam2lidar).tensor.numpy()  # what KittiDataset does
        # (mmdet3d computes in float32)
        np.testing.assert_allclose(ours[:, :6], corrected[:, :6], atol=1e-4)
        np.testing.assert_allclose(np.angle(np.exp(1j * (ours[:, 6] - corrected[:, 6]))), 0.0, atol=1e-5)
        np.testing.assert_allclose(ours[:, :6], default[:, :6], atol=1e-4)
        # mmdet3d's default heading (-ry - pi/2) ignores the calibration's rotation: off by under a degree here
        np.testing.assert_allclose(np.angle(np.exp(1j * (ours[:, 6] - default[:, 6]))), 0.0, atol=np.deg2rad(1.0))


def test_ceal_inspect_finds_kitti_folders_and_every_box_holds_points(kitti_root, capsys):
    from ceal_pipeline.cli import main as ceal

    assert ceal(["inspect", "--source", "mmdet3d", "--root", str(kitti_root), "--info", "v2/kitti_infos_train.pkl",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 2 and summary["quarantined"] == 0 and summary["cameras"] == 1
    assert summary["boxes"] == 5 and summary["boxes_with_points_within_range"] == summary["boxes_within_range"] == 5
    assert summary["camera_points_in_view"]["CAM2"] > 0.5


def test_vendor_selfcheck_round_trips_mmdet3d_kitti_boxes(kitti_root, tmp_path):
    from ceal_pipeline.export.selfcheck import run_selfcheck

    for fmt in ("mmdet3d", "openlabel"):
        summary = run_selfcheck("mmdet3d", kitti_root, fmt, tmp_path / fmt, info="v2/kitti_infos_train.pkl")
        assert summary["passed"], summary


def test_ceal_init_writes_a_configuration_for_mmdet3d_kitti_infos(kitti_root, tmp_path, capsys):
    import yaml

    from ceal_pipeline.cli import main as ceal

    config = tmp_path / "ceal.yaml"
    assert ceal(["init", "--source", "mmdet3d", "--root", str(kitti_root), "--info", "v2/kitti_infos_train.pkl",
                 "--info", "v2/kitti_infos_val.pkl", "--home", str(tmp_path / "home"), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "3 frames, 3 annotated" in out and "0 quarantined" in out
    written = yaml.safe_load(config.read_text())
    assert written["source"]["info"] == ["v2/kitti_infos_train.pkl", "v2/kitti_infos_val.pkl"]
    assert written["source"]["label_mode"] == "simulated_vendor"  # every train frame is annotated


_CONVERT_WAYMO = """
import sys
from pathlib import Path
import mmdet3d
sys.path.insert(0, str(Path(mmdet3d.__file__).parent / ".mim"))
from tools.dataset_converters import kitti_converter
from tools.dataset_converters.update_infos_to_v2 import update_pkl_infos
root, out = sys.argv[1], sys.argv[2]
kitti_converter.create_waymo_info_file(root, "waymo", relative_path=True, max_sweeps=5, workers=1)
update_pkl_infos("waymo", out_dir=out, pkl_path=str(Path(root) / "waymo_infos_train.pkl"))
"""


def test_waymo_infos_updated_by_mmdet3d_from_the_older_layout_hold_every_box_on_its_points(tmp_path):
    ids = kitti_raw.write_waymo_kitti_layout(tmp_path)
    (tmp_path / "v2").mkdir()
    done = subprocess.run([sys.executable, "-c", _CONVERT_WAYMO, str(tmp_path), str(tmp_path / "v2")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mmdet3d's converters failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    info = pickle.loads((tmp_path / "v2" / "waymo_infos_train.pkl").read_bytes())
    assert info["metainfo"]["info_version"] == "1.1" and "Tr_velo_to_cam" in info["data_list"][0]["lidar_points"]
    result = mmdet3d_info.read_frames(tmp_path, info="v2/waymo_infos_train.pkl", check="points")
    assert not result.quarantined
    assert [f.frame_id for f in result.frames] == [str(i) for i in ids]
    assert {f.sequence_id for f in result.frames} == {"waymo-1003"}  # prefix 1 + file 003: one drive
    assert [f.timestamp for f in result.frames] == pytest.approx([1550083467.34637, 1550083467.44637,
                                                                  1550083467.54637])
    assert all(len(f.cameras) == 5 and f.lidar_format.num_features == 6 for f in result.frames)
    assert result.dropped_objects == {"ignored (-1)": 1}  # the van: Waymo's classes are Car, Pedestrian, Cyclist
    for index, frame in enumerate(result.frames):
        boxes, kinds = _expected(index)
        boxes = boxes[[kind != "Van" for kind in kinds]]
        points = load_points(frame)
        inside = points_in_boxes(points, frame.boxes)
        assert (inside.sum(axis=0) >= 380).all()
        for k, box in enumerate(frame.boxes):
            axis = kitti_raw.long_axis_yaw(points[inside[:, k]])
            assert kitti_raw.axis_difference(axis, float(box[6])) < AXIS_TOLERANCE
        np.testing.assert_allclose(frame.boxes[:, :6], boxes[:, :6], atol=0.01)
        np.testing.assert_allclose(np.angle(np.exp(1j * (frame.boxes[:, 6] - boxes[:, 6]))), 0.0, atol=1e-3)
