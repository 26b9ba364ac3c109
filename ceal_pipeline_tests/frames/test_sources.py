"""Specification of the source-agnostic entry point used by Dagster and the CLI."""

from __future__ import annotations

import pytest

from ceal_pipeline.frames.sources import SOURCE_KINDS, read_source

from .conftest import SMALL_SYNTHETIC


def test_every_kind_yields_frame_records_of_the_same_shape(aimotive_sample, nuscenes_sample, small_synthetic):
    results = {
        "aimotive": read_source("aimotive", aimotive_sample),
        "mmdet3d": read_source("mmdet3d", nuscenes_sample),
        "synthetic": read_source("synthetic", small_synthetic),
    }
    assert set(results) == set(SOURCE_KINDS)
    for kind, result in results.items():
        assert result.frames, kind
        for frame in result.frames:
            assert frame.boxes.shape[1] == 7 and frame.boxes.dtype.name == "float32", kind
            assert len(frame.labels) == len(frame.boxes) and frame.cameras, kind
            assert all(c.cam2img.shape == (3, 3) and c.lidar2cam.shape == (4, 4) for c in frame.cameras), kind


def test_options_left_at_none_take_the_reader_defaults(small_synthetic):
    result = read_source("synthetic", small_synthetic, n_frames=None, seed=None, check=None)
    assert len(result.frames) == SMALL_SYNTHETIC["n_frames"]


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="aimotive, mmdet3d, synthetic"):
        read_source("kitti", tmp_path)


def test_option_a_reader_does_not_take_is_named_with_the_accepted_ones(tmp_path):
    with pytest.raises(TypeError, match=r"does not take option\(s\) \['lidar_prefix'\].*'check'"):
        read_source("aimotive", tmp_path, lidar_prefix="x")


def test_bad_check_level_is_rejected(nuscenes_sample):
    with pytest.raises(ValueError, match="check='deep'"):
        read_source("mmdet3d", nuscenes_sample, check="deep")
