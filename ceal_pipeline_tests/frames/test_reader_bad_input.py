"""Specifications of how the frame readers answer bad input: one bad entry is quarantined
with its reason and file, the rest of the source is read; ids are never rewritten; files
outside the dataset root are refused. (The whole corpus of bad inputs: ``ceal_pipeline_tests/badinput``.)"""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

from ceal_pipeline.frames import mmdet3d_info
from ceal_pipeline.frames.points import LidarReadError, load_points
from ceal_pipeline.frames.records import InvalidFrameId, validate_frame_id
from ceal_pipeline_tests.badinput.corpus import INFO, _aimotive_copy, _good_entry, write_info_dataset


def _read(root, **options):
    return mmdet3d_info.read_frames(root, lidar_prefix="lidar", camera_prefix="camera", **options)


def _with_entry(root, entry_1, **read_options):
    entries = [_good_entry(0), entry_1, _good_entry(2)]
    write_info_dataset(root, entries)
    result = _read(root, **read_options)
    assert [f.frame_id for f in result.frames] == ["frame-0", "frame-2"], result.quarantined
    (bad,) = result.quarantined
    assert f"{INFO} entry 1" in bad.reason
    return bad


@pytest.mark.parametrize("value", ["frame-1", None, [1, 2]])
def test_an_entry_that_is_not_a_dict_quarantines_that_entry_and_the_rest_is_read(tmp_path, value):
    bad = _with_entry(tmp_path, value)
    assert bad.frame_id == f"{INFO}#1" and "not a dict" in bad.reason and bad.path.endswith(INFO)


@pytest.mark.parametrize("field, value, words", [
    ("lidar_points", "frame-1.bin", "lidar_points is a str"),
    ("instances", "car", "instances is a str"),
    ("instances", ["car"], "is not a dict"),
    ("images", "CAM_FRONT", "images is a str"),
    ("timestamp", "yesterday", "timestamp 'yesterday' is not a number"),
    ("timestamp", float("inf"), "not a time"),
])
def test_a_malformed_field_quarantines_the_entry_naming_the_info_file(tmp_path, field, value, words):
    entry = _good_entry(1)
    entry[field] = value
    assert words in _with_entry(tmp_path, entry).reason


@pytest.mark.parametrize("features", [0, 2, -4, "four"])
def test_num_pts_feats_below_three_quarantines_the_entry_instead_of_dividing_by_zero(tmp_path, features):
    entry = _good_entry(1)
    entry["lidar_points"]["num_pts_feats"] = features
    assert "at least x, y, z" in _with_entry(tmp_path, entry).reason


@pytest.mark.parametrize("edit, words", [
    (lambda e: e["instances"][0].update(bbox_3d=[8.0, 1.0, -1.5, -4.0, 1.8, 1.5, 0.1]), "size that is not positive"),
    (lambda e: e["instances"][0].update(bbox_3d=[8.0, 1.0, -1.5, 4.0, 0.0, 1.5, 0.1]), "size that is not positive"),
    (lambda e: e["images"]["CAM_FRONT"].update(lidar2cam=[[float("nan")] * 4] * 4), "non-finite cam2img or lidar2cam"),
    (lambda e: e.update(ego2global=[[float("nan")] * 4] * 4), "not a finite 4x4 matrix"),
    (lambda e: e["instances"][0].update(bbox_label_3d=0.5), "not an integer label"),
])
def test_values_that_would_train_on_garbage_quarantine_the_entry(tmp_path, edit, words):
    entry = _good_entry(1)
    edit(entry)
    assert words in _with_entry(tmp_path, entry).reason


def test_ids_are_never_rewritten_so_two_non_ascii_ids_are_two_entries_quarantined_under_their_original_ids(tmp_path):
    entries = [_good_entry(0), _good_entry(1), _good_entry(2)]
    entries[1]["token"], entries[2]["token"] = "frameü1", "frameé1"
    write_info_dataset(tmp_path, entries)
    result = _read(tmp_path)
    assert [f.frame_id for f in result.frames] == ["frame-0"]
    assert [q.frame_id for q in result.quarantined] == [ascii("frameü1"), ascii("frameé1")]
    assert all("is not valid" in q.reason and "rename the frame in its source" in q.reason for q in result.quarantined)


@pytest.mark.parametrize("raw", ["abc\n", "x'; DROP TABLE frames;--", "=SUM(A1)", "", "é"])
def test_a_frame_id_must_match_the_pattern_as_a_whole(raw):
    with pytest.raises(InvalidFrameId, match="is not valid"):
        validate_frame_id(raw)
    assert validate_frame_id("20210901-194123-00.37.12-00.37.27@Yoda:0033643")  # aiMotive ids as they are


def test_a_none_token_is_quarantined_not_read_as_the_id_none(tmp_path):
    entry = _good_entry(1)
    entry["token"] = None
    assert "token is None" in _with_entry(tmp_path, entry).reason
    entry = dict(_good_entry(1), token=None, sample_idx=7)  # another id key still names the frame
    write_info_dataset(tmp_path / "other", [entry])
    assert [f.frame_id for f in _read(tmp_path / "other").frames] == ["7"]


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd"])
def test_a_lidar_path_outside_the_dataset_root_is_quarantined(tmp_path, path):
    entry = _good_entry(1)
    entry["lidar_points"]["lidar_path"] = path
    bad = _with_entry(tmp_path / "data", entry)
    assert "outside the dataset root" in bad.reason and "extra_roots" in bad.reason
    assert bad.path.endswith("/etc/passwd") and not bad.path.startswith(str(tmp_path / "data"))


def test_a_folder_outside_the_root_is_read_only_when_extra_roots_names_it(tmp_path):
    write_info_dataset(tmp_path / "data")
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    shutil.copy(tmp_path / "data" / "lidar" / "frame-1.bin", sweeps / "frame-1.bin")
    entries = [_good_entry(i) for i in range(3)]
    entries[1]["lidar_points"]["lidar_path"] = str(sweeps / "frame-1.bin")
    (tmp_path / "data" / INFO).write_bytes(pickle.dumps({"metainfo": {}, "data_list": entries}))
    assert len(_read(tmp_path / "data").frames) == 2
    assert len(_read(tmp_path / "data", extra_roots=[sweeps]).frames) == 3


def test_an_all_nan_point_cloud_is_refused_at_check_points_and_when_loaded(tmp_path):
    write_info_dataset(tmp_path)
    record = next(f for f in _read(tmp_path).frames if f.frame_id == "frame-1")
    np.full((64, 4), np.nan, dtype=np.float32).tofile(tmp_path / "lidar" / "frame-1.bin")
    (bad,) = _read(tmp_path, check="points").quarantined
    assert "holds no finite point" in bad.reason
    with pytest.raises(LidarReadError, match="frame frame-1: .*holds no finite point"):
        load_points(record)


@pytest.mark.parametrize("check, content, words", [
    ("header", b"", "is empty (0 bytes)"),
    ("points", b"\xff\xd8 not a jpeg" * 30, "is unreadable"),
])
def test_a_broken_image_is_refused_even_when_the_info_gives_its_size(tmp_path, check, content, words):
    write_info_dataset(tmp_path)
    (tmp_path / "camera" / "frame-1.jpg").write_bytes(content)
    (bad,) = _read(tmp_path, check=check).quarantined
    assert words in bad.reason and bad.path.endswith("frame-1.jpg")


def test_an_aimotive_sequence_whose_folder_name_makes_invalid_ids_is_quarantined_and_the_others_are_read(
        aimotive_sample, tmp_path):
    from ceal_pipeline.frames import aimotive

    _aimotive_copy(tmp_path)
    _aimotive_copy(tmp_path, os.fsdecode(b"seq-\xfc-latin1"))
    result = aimotive.read_frames(tmp_path)
    assert len(result.frames) == 3 and all("@Yoda:" in f.frame_id for f in result.frames)
    assert len(result.quarantined) == 3
    assert all(q.frame_id.startswith("'seq-\\udcfc-latin1:") and "is not valid" in q.reason
               for q in result.quarantined)
    assert all(q.reason.encode("utf-8") for q in result.quarantined)  # printable, so the catalog can store it


@pytest.mark.parametrize("objects, words", [
    ({"a": 1}, "expected {'CapturedObjects': [...]}"),
    (["car"], "object 0 is a str"),
])
def test_malformed_aimotive_objects_quarantine_the_frame_naming_the_file(aimotive_sample, tmp_path, objects, words):
    import json

    from ceal_pipeline.frames import aimotive

    sequence = _aimotive_copy(tmp_path)
    path = sequence / "dynamic" / "box" / "3d_body" / "frame_0033644.json"
    path.write_text(json.dumps({"CapturedObjects": objects}))
    result = aimotive.read_frames(tmp_path)
    (bad,) = result.quarantined
    assert words in bad.reason and bad.path == str(path) and len(result.frames) == 2


def test_a_non_numeric_aimotive_calibration_value_names_the_calibration_file(aimotive_sample, tmp_path):
    import json

    from ceal_pipeline.frames import aimotive

    sequence = _aimotive_copy(tmp_path)
    path = sequence / "sensor" / "calibration" / "calibration.json"
    calibration = json.loads(path.read_text())
    calibration["M_FISHEYE_L"]["xi"] = "yesterday"
    path.write_text(json.dumps(calibration))
    result = aimotive.read_frames(tmp_path)
    assert result.frames == [] and all(str(path) in q.reason and "yesterday" in q.reason for q in result.quarantined)
