"""Specification of the aiMotive Multimodal Dataset reader, on the real 3-frame sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.frames import aimotive
from ceal_pipeline.frames.points import LidarReadError, load_points
from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES

SEQUENCE = "20210901-194123-00.37.12-00.37.27@Yoda"


@pytest.fixture
def sample_copy(aimotive_sample, tmp_path) -> Path:
    """A writable copy of the sample (3 LAZ, 12 images, calibration) to damage."""
    return Path(shutil.copytree(aimotive_sample, tmp_path / "aimotive", dirs_exist_ok=True))


def _sequence_dir(root: Path) -> Path:
    return root / "data" / "train" / "nighttime" / SEQUENCE


def test_sample_reads_three_labeled_frames_of_one_sequence_with_four_cameras(aimotive_sample):
    result = aimotive.read_frames(aimotive_sample)
    expected = [aimotive.frame_id_for(SEQUENCE, n) for n in ("0033643", "0033644", "0033645")]
    assert [f.frame_id for f in result.frames] == expected
    assert result.quarantined == []
    assert {f.sequence_id for f in result.frames} == {SEQUENCE}
    assert all(f.split == "train" and f.is_labeled for f in result.frames)
    assert all(len(f.cameras) == 4 for f in result.frames)
    # LAZ gps_time is in nanoseconds; consecutive keyframes are ~67 ms apart
    assert np.diff([f.timestamp for f in result.frames]) == pytest.approx([0.0669, 0.0667], abs=2e-3)


def test_sample_point_counts_and_box_counts(aimotive_sample):
    frames = aimotive.read_frames(aimotive_sample).frames
    points = load_points(frames[0])
    assert points.shape == (129715, 4) and points.dtype == np.float32
    assert 0 <= points[:, 3].min() and points[:, 3].max() <= 255
    # 5 cars, 2 vans (-> car) and 1 truck per frame
    for frame in frames:
        assert np.bincount(frame.labels, minlength=4).tolist() == [7, 1, 0, 0]


def test_most_labeled_boxes_within_50m_contain_lidar_points(aimotive_sample):
    within, with_points = 0, 0
    for frame in aimotive.read_frames(aimotive_sample).frames:
        counts = count_points_in_boxes(load_points(frame), frame.boxes)
        near = np.hypot(frame.boxes[:, 0], frame.boxes[:, 1]) <= 50
        within += near.sum()
        with_points += (near & (counts > 0)).sum()
    assert within > 0 and with_points / within >= 0.7


def test_boxes_are_bottom_centred_on_the_road(aimotive_sample):
    frame = aimotive.read_frames(aimotive_sample).frames[0]
    points = load_points(frame)
    van = frame.boxes[np.argmin(np.hypot(frame.boxes[:, 0], frame.boxes[:, 1]))]
    # the box bottom sits at the ground height of the points around it (body frame)
    around = points[(np.abs(points[:, 0] - van[0]) < 8) & (np.abs(points[:, 1] - van[1] - 4) < 1.5)]
    assert abs(np.median(around[:, 2]) - van[2]) < 0.3


def test_fisheye_cameras_keep_their_mei_model_and_pinhole_ones_their_distortion(aimotive_sample):
    cameras = {c.name: c for c in aimotive.read_frames(aimotive_sample).frames[0].cameras}
    fisheye = cameras["M_FISHEYE_L"]
    assert fisheye.model == "mei" and fisheye.distortion[0] == pytest.approx(1.0222136, rel=1e-6)
    front = cameras["F_MIDLONGRANGECAM_CL"]
    assert front.model == "opencv_pinhole" and len(front.distortion) == 5
    assert (front.width, front.height) == (1280, 704)
    # the front camera looks along body +x: a point 20 m ahead projects near the image centre
    u, v, w = front.cam2img @ (front.lidar2cam @ [20.0, 0.0, 1.2, 1.0])[:3]
    assert abs(u / w - 640) < 100 and abs(v / w - 352) < 100


def test_corrupt_laz_quarantines_only_that_frame(sample_copy):
    laz = _sequence_dir(sample_copy) / "dynamic" / "raw-revolutions" / "frame_0033644.laz"
    laz.chmod(0o644)
    laz.write_bytes(b"not a LAZ file" * 100)
    result = aimotive.read_frames(sample_copy)
    assert len(result.frames) == 2
    (bad,) = result.quarantined
    assert bad.frame_id.endswith("0033644") and "unreadable" in bad.reason and bad.path == str(laz)


def test_truncated_laz_that_passes_the_header_check_fails_at_load_with_the_frame_named(sample_copy):
    laz = _sequence_dir(sample_copy) / "dynamic" / "raw-revolutions" / "frame_0033645.laz"
    laz.chmod(0o644)
    laz.write_bytes(laz.read_bytes()[: 200_000])
    header_result = aimotive.read_frames(sample_copy, check="header")
    record = next((f for f in header_result.frames if f.frame_id.endswith("0033645")), None)
    if record is not None:  # the header and first chunk survived the cut
        with pytest.raises(LidarReadError, match="0033645"):
            load_points(record)
    full = aimotive.read_frames(sample_copy, check="points")
    assert [q.frame_id[-7:] for q in full.quarantined] == ["0033645"]


def test_missing_lidar_or_camera_image_quarantines_the_frame_with_its_reason(sample_copy):
    sequence = _sequence_dir(sample_copy)
    (sequence / "dynamic" / "raw-revolutions" / "frame_0033643.laz").unlink()
    (sequence / "sensor" / "camera" / "M_FISHEYE_R" / "M_FISHEYE_R_0033645.jpg").unlink()
    result = aimotive.read_frames(sample_copy)
    reasons = {q.frame_id[-7:]: q.reason for q in result.quarantined}
    assert "missing" in reasons["0033643"] and "frame_0033643.laz" in reasons["0033643"]
    assert "M_FISHEYE_R_0033645.jpg" in reasons["0033645"]
    assert [f.frame_id[-7:] for f in result.frames] == ["0033644"]


def test_malformed_annotation_quarantines_and_unmapped_types_are_dropped_and_counted(sample_copy):
    box_dir = _sequence_dir(sample_copy) / "dynamic" / "box" / "3d_body"
    bad = box_dir / "frame_0033643.json"
    bad.chmod(0o644)
    bad.write_text("{ not json")
    edited = box_dir / "frame_0033644.json"
    edited.chmod(0o644)
    content = json.loads(edited.read_text())
    animal = dict(content["CapturedObjects"][0], ObjectType="ANIMAL")
    content["CapturedObjects"].append(animal)
    edited.write_text(json.dumps(content))
    result = aimotive.read_frames(sample_copy)
    assert [q.frame_id[-7:] for q in result.quarantined] == ["0033643"]
    assert "malformed annotation" in result.quarantined[0].reason
    assert result.dropped_objects == {"ANIMAL": 1}
    assert all(len(f.boxes) == 8 for f in result.frames)


def test_frame_without_annotation_is_an_unlabeled_frame(sample_copy):
    (_sequence_dir(sample_copy) / "dynamic" / "box" / "3d_body" / "frame_0033645.json").unlink()
    frames = {f.frame_id[-7:]: f for f in aimotive.read_frames(sample_copy).frames}
    assert not frames["0033645"].is_labeled and frames["0033644"].is_labeled


def test_unreadable_calibration_quarantines_the_whole_sequence(sample_copy):
    calibration = _sequence_dir(sample_copy) / "sensor" / "calibration" / "calibration.json"
    calibration.chmod(0o644)
    calibration.write_text("[]")
    result = aimotive.read_frames(sample_copy)
    assert result.frames == [] and len(result.quarantined) == 3


def test_root_without_sequences_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no aiMotive sequence"):
        aimotive.read_frames(tmp_path)


def test_labels_index_the_detection_classes(aimotive_sample):
    frame = aimotive.read_frames(aimotive_sample).frames[0]
    assert frame.class_names == DETECTION_CLASSES and frame.labels.dtype == np.int64
