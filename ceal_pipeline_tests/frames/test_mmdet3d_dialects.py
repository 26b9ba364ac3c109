"""Specification of the mmdet3d v2 info dialects that need their dataset's SDK to be produced.

Waymo (``waymo_converter.py``, converter v1.4), Waymo infos updated from the
KITTI-layout converter, nuScenes and Lyft (``update_infos_to_v2.py``) are written
here entry by entry as mmdet3d v1.4.0's converter code writes them (keys, units,
box conventions), since their converters read the datasets through their SDKs.
Every file holds the same LiDAR-frame objects, each with points on its surface;
whatever the dialect, the reader must give back those boxes on those points,
with the dataset's frame ids, sequences and timestamps. KITTI infos are produced
by mmdet3d itself in :mod:`.test_mmdet3d_converted_infos`.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from ceal_pipeline.cli import main as ceal
from ceal_pipeline.frames import mmdet3d_info
from ceal_pipeline.frames.mmdet3d_dialects import detect_dialect
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline_tests.frames import kitti_raw

#: LiDAR bottom-centre boxes (x y z l w h yaw) of a car, a pedestrian and a cyclist.
BOXES = np.array([[15.0, 3.0, -1.7, 4.5, 1.9, 1.6, 0.7], [8.0, -2.0, -1.7, 0.9, 0.6, 1.8, -2.0],
                  [22.0, -4.0, -1.65, 1.9, 0.7, 1.7, 2.9]])
NAMES = ("car", "pedestrian", "cyclist")
NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
LYFT_CLASSES = ("car", "truck", "bus", "emergency_vehicle", "other_vehicle", "motorcycle", "bicycle",
                "pedestrian", "animal")
#: A camera looking along +x (LiDAR -> camera axes), metres.
LIDAR2CAM = np.array([[0.0, -1.0, 0.0, 0.05], [0.0, 0.0, -1.0, 0.3], [1.0, 0.0, 0.0, -0.2], [0, 0, 0, 1.0]])
CAM2IMG = [[500.0, 0.0, 320.0], [0.0, 500.0, 120.0], [0.0, 0.0, 1.0]]


def _cloud(root, name: str, features: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = np.concatenate([kitti_raw.surface_points(box, 300, rng) for box in BOXES])
    out = np.zeros((len(points), features), np.float32)
    out[:, :4] = points
    out.tofile(root / name)


def _image(root, name: str) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((240, 640, 3), np.uint8)).save(root / name)


def _instances(boxes, labels, **extra) -> list[dict]:
    return [{"bbox_3d": [float(v) for v in box], "bbox_label_3d": int(label), "bbox_label": int(label), **extra}
            for box, label in zip(boxes, labels)]


def _write(root, metainfo: dict, entries: list[dict], name: str):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(pickle.dumps({"metainfo": metainfo, "data_list": entries}))
    return name


def waymo_v14(root) -> str:
    """``waymo_converter.py`` (mmdet3d v1.4): LiDAR-frame bottom-centre boxes, no categories,
    ``sample_idx`` = prefix + file + frame, ``context_name``, timestamps in microseconds."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for frame in range(2):
        _cloud(root, f"1000{frame:03d}.bin", 6, frame)
        _image(root, f"1000{frame:03d}.jpg")
        entries.append({
            "sample_idx": 1000000 + frame, "context_name": "10017090168044687777_6380_000_6400_000",
            "timestamp": 1550083467346370 + 100000 * frame, "ego2global": np.eye(4).tolist(),
            "images": {"CAM_FRONT": {"img_path": f"1000{frame:03d}.jpg", "height": 240, "width": 640,
                                     "lidar2cam": LIDAR2CAM.tolist(), "cam2img": CAM2IMG,
                                     "lidar2img": (np.pad(CAM2IMG, ((0, 1), (0, 1))) @ LIDAR2CAM).tolist()}},
            "lidar_points": {"lidar_path": f"1000{frame:03d}.bin", "num_pts_feats": 6},
            "instances": _instances(BOXES, [0, 1, 2], num_lidar_pts=300, camera_id=0),
        })
    return _write(root, {"dataset": "waymo", "version": "waymo_v1.4", "info_version": "mmdet3d_v1.4"}, entries,
                  "waymo_infos_train.pkl")


def waymo_kitti_layout(root) -> str:
    """``update_waymo_infos``: boxes ``x y z l h w ry`` in CAM_FRONT's rectified frame,
    ``lidar2cam = R0_rect @ Tr_velo_to_cam``, ``lidar_points.Tr_velo_to_cam``, no context name."""
    lidar2cam = kitti_raw.R0_RECT @ kitti_raw.TR_VELO_TO_CAM
    entries = []
    for frame in range(2):
        index = 1003000 + frame
        _cloud(root, f"{index}.bin", 6, frame)
        _image(root, f"{index}.jpg")
        camera_boxes = []
        for box in BOXES:
            location, (height, width, length), ry = kitti_raw.lidar_to_camera_box(box, lidar2cam)
            camera_boxes.append([*location, length, height, width, ry])
        entries.append({
            "sample_idx": index, "timestamp": 1550083467346370 + 100000 * frame, "ego2global": np.eye(4).tolist(),
            "images": {"CAM_FRONT": {"img_path": f"{index}.jpg", "cam2img": np.pad(CAM2IMG, ((0, 1), (0, 1))).tolist(),
                                     "lidar2cam": lidar2cam.tolist(), "timestamp": 1550083467346370,
                                     "height": 240, "width": 640}},
            "lidar_points": {"num_pts_feats": 6, "lidar_path": f"{index}.bin", "timestamp": 1550083467346370,
                             "Tr_velo_to_cam": kitti_raw.TR_VELO_TO_CAM.tolist()},
            "instances": _instances(camera_boxes, [0, 1, 2]),
        })
    metainfo = {"categories": {"Car": 0, "Pedestrian": 1, "Cyclist": 2, "Sign": 3}, "dataset": "waymo",
                "info_version": "1.1"}
    return _write(root, metainfo, entries, "waymo_infos_train.pkl")


def nuscenes_like(root, dataset: str, classes, named: str | None = None,
                  lidar_name: str = "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__15332014709{frame}8018.pcd.bin"):
    """``update_nuscenes_infos`` / ``update_lyft_infos``: ``token`` ids, gravity-centre LiDAR boxes,
    ``lidar2ego`` and ``cam2ego``, seconds, ``sample_idx`` only a position."""
    centred = BOXES.copy()
    centred[:, 2] += centred[:, 5] / 2
    labels = [classes.index(n if n in classes else "bicycle") for n in NAMES]
    entries = []
    for frame in range(2):
        lidar = lidar_name.format(frame=frame)
        _cloud(root, lidar, 5, frame)
        _image(root, f"cam{frame}.jpg")
        entries.append({
            "sample_idx": frame, "token": f"fd8420396768425eabec9bdddf7e64b{frame}", "timestamp": 1533201470.4 + frame,
            "ego2global": np.eye(4).tolist(),
            "images": {"CAM_FRONT": {"img_path": f"cam{frame}.jpg", "cam2img": CAM2IMG, "sample_data_token": "t",
                                     "timestamp": 1533201470.4, "cam2ego": np.linalg.inv(LIDAR2CAM).tolist(),
                                     "lidar2cam": LIDAR2CAM.tolist()}},
            "lidar_points": {"num_pts_feats": 5, "lidar_path": lidar, "lidar2ego": np.eye(4).tolist()},
            "lidar_sweeps": [],
            "instances": _instances(centred, labels, velocity=[0.0, 0.0], bbox_3d_isvalid=True),
        })
    metainfo = ({"CLASSES": tuple(classes), "DATASET": named} if named else
                {"categories": {c: i for i, c in enumerate(classes)}, "dataset": dataset, "info_version": "1.1"})
    return _write(root, metainfo, entries, f"{dataset}_infos_train.pkl")


def _check_boxes(result, expected_sequence, expected_dialect_source):
    assert not result.quarantined and len(result.frames) == 2
    for frame in result.frames:
        np.testing.assert_allclose(frame.boxes, BOXES, atol=1e-4)
        assert [DETECTION_CLASSES[i] for i in frame.labels] == list(NAMES)
        assert (count_points_in_boxes(load_points(frame), frame.boxes) >= 290).all()
        assert frame.sequence_id == expected_sequence(frame)
        assert frame.source == expected_dialect_source


def test_waymo_v14_infos_keep_lidar_boxes_context_sequences_and_microsecond_time(tmp_path):
    waymo_v14(tmp_path)
    result = mmdet3d_info.read_frames(tmp_path, check="points")
    _check_boxes(result, lambda f: "10017090168044687777_6380_000_6400_000", "waymo")
    assert [f.frame_id for f in result.frames] == ["1000000", "1000001"]
    assert result.frames[1].timestamp == pytest.approx(1550083467.44637)
    assert result.frames[0].lidar_format.num_features == 6


def test_waymo_infos_updated_from_the_kitti_layout_hold_camera_frame_boxes(tmp_path):
    waymo_kitti_layout(tmp_path)
    result = mmdet3d_info.read_frames(tmp_path, check="points")
    # one sequence per converted file: sample_idx = prefix (1) + file index (003) + frame
    _check_boxes(result, lambda f: "waymo-1003", "waymo")


def test_nuscenes_infos_lower_gravity_centres_and_group_frames_by_log(tmp_path):
    nuscenes_like(tmp_path, "nuscenes", NUSCENES_CLASSES)
    result = mmdet3d_info.read_frames(tmp_path, check="points")
    _check_boxes(result, lambda f: "n015-2018-08-02-17-16-37+0800", "nuscenes")
    assert [f.frame_id for f in result.frames] == ["fd8420396768425eabec9bdddf7e64b0", "fd8420396768425eabec9bdddf7e64b1"]


def test_lyft_infos_named_nuscenes_are_recognised_by_their_classes(tmp_path):
    # mmdet3d's own Lyft fixture says DATASET: Nuscenes, with upper-case CLASSES
    nuscenes_like(tmp_path, "lyft", LYFT_CLASSES, named="Nuscenes", lidar_name="host-a017_lidar1_123611888690112592{frame}.bin")
    info = pickle.loads((tmp_path / "lyft_infos_train.pkl").read_bytes())
    assert detect_dialect(mmdet3d_info.normalise_metainfo(info["metainfo"]), info["data_list"]).name == "lyft"
    result = mmdet3d_info.read_frames(tmp_path, check="points")
    _check_boxes(result, lambda f: f.frame_id, "Nuscenes")  # Lyft names no scene: each frame its own


@pytest.mark.parametrize("old", [
    [{"image": {"image_idx": 0}, "point_cloud": {"velodyne_path": "a.bin"}, "calib": {}, "annos": {}}],
    {"infos": [{"token": "a"}], "metadata": {"version": "v1.0-trainval"}},
], ids=["kitti-list", "nuscenes-infos-metadata"])
def test_pre_v2_infos_are_refused_with_the_converter_to_run(tmp_path, old):
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(old))
    with pytest.raises(mmdet3d_info.InfoFileError, match="update_infos_to_v2.py"):
        mmdet3d_info.read_frames(tmp_path)


def test_inspect_fails_and_names_the_reasons_when_no_frame_is_usable(tmp_path, capsys):
    waymo_v14(tmp_path)
    for cloud in tmp_path.glob("*.bin"):
        cloud.unlink()
    assert ceal(["inspect", "--source", "mmdet3d", "--root", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == 0 and summary["quarantined"] == 2
    reasons = summary["quarantine_reasons"]
    assert sum(reasons.values()) == 2 and all("missing" in reason and "entry" not in reason for reason in reasons)
    assert "no usable frame" in captured.err and "missing" in captured.err


def test_init_shows_the_quarantine_reasons_when_no_frame_is_usable(tmp_path, capsys):
    waymo_v14(tmp_path / "data")
    for cloud in (tmp_path / "data").glob("*.bin"):
        cloud.unlink()
    code = ceal(["init", "--source", "mmdet3d", "--root", str(tmp_path / "data"), "--home", str(tmp_path / "home")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no usable frame" in err and "quarantined because" in err and "missing" in err


WRITERS = {
    "waymo_v1.4": waymo_v14,
    "waymo_kitti": waymo_kitti_layout,
    "nuscenes": lambda root: nuscenes_like(root, "nuscenes", NUSCENES_CLASSES),
    "lyft": lambda root: nuscenes_like(root, "lyft", LYFT_CLASSES,
                                       lidar_name="host-a017_lidar1_123611888690112592{frame}.bin"),
}


@pytest.mark.parametrize("dialect", sorted(WRITERS))
def test_inspect_init_catalog_and_vendor_selfcheck_work_on_each_dialect(dialect, tmp_path, capsys):
    from ceal_pipeline.catalog import FrameCatalog
    from ceal_pipeline.export.selfcheck import run_selfcheck

    root = tmp_path / "data"
    root.mkdir()
    WRITERS[dialect](root)
    assert ceal(["inspect", "--source", "mmdet3d", "--root", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 2 and summary["boxes"] == 6 and summary["quarantined"] == 0
    assert summary["boxes_with_points_within_range"] == summary["boxes_within_range"] == 6
    assert ceal(["init", "--source", "mmdet3d", "--root", str(root), "--home", str(tmp_path / "home")]) == 0
    assert "2 frames, 2 annotated, 6 boxes, 0 quarantined" in capsys.readouterr().out
    report = FrameCatalog(tmp_path / "catalog").ingest("mmdet3d", root)
    assert report.boxes == 6
    for fmt in ("mmdet3d", "openlabel"):
        assert run_selfcheck("mmdet3d", root, fmt, tmp_path / fmt)["passed"]
