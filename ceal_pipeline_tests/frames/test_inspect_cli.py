"""Specification of `ceal inspect`: summary line, per-frame lines, table, errors."""

from __future__ import annotations

import json

import pytest

from ceal_pipeline.cli import main

SUMMARY_KEYS = {"frames", "sequences", "labeled_frames", "boxes", "points_mean", "cameras", "quarantined"}


def _json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_json_summary_of_the_nuscenes_sample(nuscenes_sample, capsys):
    assert main(["inspect", "--source", "mmdet3d", "--root", str(nuscenes_sample), "--json"]) == 0
    (summary,) = _json_lines(capsys)
    assert SUMMARY_KEYS <= set(summary)
    assert {k: summary[k] for k in SUMMARY_KEYS} == {
        "frames": 1, "sequences": 1, "labeled_frames": 1, "boxes": 43, "points_mean": 34688.0, "cameras": 6,
        "quarantined": 0}
    assert summary["boxes_with_points_within_range"] >= 0.7 * summary["boxes_within_range"]


def test_frames_flag_prints_one_line_per_frame_with_points_inside_each_box(aimotive_sample, capsys):
    assert main(["inspect", "--source", "aimotive", "--root", str(aimotive_sample), "--frames", "--json"]) == 0
    *frames, summary = _json_lines(capsys)
    assert len(frames) == summary["frames"] == 3
    first = frames[0]
    assert first["n_points"] == 129715 and first["sequence"].startswith("20210901-194123")
    assert len(first["boxes"]) == 8 and all(len(b["box"]) == 7 for b in first["boxes"])
    assert max(b["points_inside"] for b in first["boxes"]) > 1000  # the van beside the ego


def test_synthetic_source_generates_into_root_then_reads_it(tmp_path, capsys):
    root = tmp_path / "syn"
    args = ["inspect", "--source", "synthetic", "--root", str(root), "--frames-count", "4", "--seed", "5", "--json"]
    assert main(args) == 0
    (summary,) = _json_lines(capsys)
    assert summary["frames"] == 4 and summary["cameras"] == 2 and summary["quarantined"] == 0
    assert summary["boxes_with_points_within_range"] == summary["boxes_within_range"]
    # read again without parameters: the existing dataset is used as it is
    assert main(["inspect", "--source", "synthetic", "--root", str(root), "--json"]) == 0
    assert _json_lines(capsys)[0]["frames"] == 4


def test_quarantined_frames_are_counted_and_listed(tmp_path, capsys):
    root = tmp_path / "syn"
    assert main(["inspect", "--source", "synthetic", "--root", str(root), "--frames-count", "3", "--json"]) == 0
    capsys.readouterr()
    next((root / "lidar").glob("*.bin")).unlink()
    assert main(["inspect", "--source", "synthetic", "--root", str(root), "--frames", "--json"]) == 0
    lines = _json_lines(capsys)
    assert lines[-1]["quarantined"] == 1 and lines[-1]["frames"] == 2
    assert [line for line in lines if "quarantined" in line and "id" in line][0]["quarantined"].count("missing") == 1


def test_human_readable_table_and_progress_bar(nuscenes_sample, capsys):
    assert main(["inspect", "--source", "mmdet3d", "--root", str(nuscenes_sample)]) == 0
    captured = capsys.readouterr()
    assert "labeled_frames" in captured.out and "boxes with points" in captured.out
    assert "reading points" in captured.err


def test_bad_root_is_a_clear_error_with_exit_code_2(tmp_path, capsys):
    assert main(["inspect", "--source", "aimotive", "--root", str(tmp_path / "missing"), "--json"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_source_is_required():
    with pytest.raises(SystemExit):
        main(["inspect", "--root", "."])


def test_an_extrinsic_in_the_wrong_units_shows_as_a_camera_that_sees_no_points(tmp_path, capsys):
    import pickle

    import numpy as np

    root = tmp_path / "syn"
    assert main(["inspect", "--source", "synthetic", "--root", str(root), "--frames-count", "2", "--json"]) == 0
    healthy = _json_lines(capsys)[0]["camera_points_in_view"]
    assert healthy["CAM_FRONT"] > 0.05 and healthy["CAM_BACK"] > 0.05
    info_path = root / "ceal_synthetic_infos.pkl"
    info = pickle.loads(info_path.read_bytes())
    for entry in info["data_list"]:  # translation written in millimetres instead of metres
        lidar2cam = np.asarray(entry["images"]["CAM_FRONT"]["lidar2cam"])
        lidar2cam[:3, 3] *= 1000.0
        entry["images"]["CAM_FRONT"]["lidar2cam"] = lidar2cam.tolist()
    info_path.write_bytes(pickle.dumps(info))
    assert main(["inspect", "--source", "synthetic", "--root", str(root), "--json"]) == 0
    broken = _json_lines(capsys)[0]["camera_points_in_view"]
    assert broken["CAM_FRONT"] < 0.2 * healthy["CAM_FRONT"] and broken["CAM_BACK"] == healthy["CAM_BACK"]


def test_inspect_reports_frame_ids_read_twice_and_quarantines_the_later_copy(tmp_path, capsys):
    from ceal_pipeline_tests.badinput.corpus import _good_entry, write_info_dataset

    entries = [_good_entry(0), _good_entry(1), dict(_good_entry(2), token="frame-0")]
    write_info_dataset(tmp_path, entries)
    assert main(["inspect", "--source", "mmdet3d", "--root", str(tmp_path), "--lidar-prefix", "lidar",
                 "--camera-prefix", "camera", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])
    assert summary["duplicate_ids"] == 1 and summary["frames"] == 2 and summary["quarantined"] == 1
    assert "repeat an id already read (e.g. frame-0)" in captured.err


def test_inspect_at_check_points_opens_images_the_info_file_gives_a_size_for(tmp_path, capsys):
    from ceal_pipeline_tests.badinput.corpus import write_info_dataset

    write_info_dataset(tmp_path)
    (tmp_path / "camera" / "frame-2.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage" * 40)
    args = ["inspect", "--source", "mmdet3d", "--root", str(tmp_path), "--lidar-prefix", "lidar", "--camera-prefix",
            "camera", "--json"]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["quarantined"] == 0  # header: size only
    assert main(args + ["--check", "points"]) == 0
    assert json.loads(capsys.readouterr().out)["quarantined"] == 1
