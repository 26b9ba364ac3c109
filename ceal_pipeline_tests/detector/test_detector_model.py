"""Specification of the BEVFusion-like detector: configs, geometry, targets, CPU-only ops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.detector.builder import build_detector, load_config
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline_tests.detector.conftest import CAM2IMG, IMAGE_H, IMAGE_W, LIDAR2CAM, make_frames


def _batch(model, frames, with_labels=False):
    return load_batch(frames, class_names=model.class_names, point_cloud_range=model.point_cloud_range,
                      image_size=model.ceal_config["data"]["image_size"], with_labels=with_labels)


@pytest.mark.parametrize("name, uses_cameras", [("bevfusion_lite", True), ("pointpillars_lite", False),
                                                ("bevfusion_tiny", True)])
def test_every_shipped_config_builds_a_registered_detector(name, uses_cameras):
    from mmdet3d.registry import MODELS

    model = build_detector(name)
    assert type(model).__name__ == "CealBEVFusion"
    assert MODELS.get("CealBEVFusion") is type(model)
    assert (model.camera_branch is not None) == uses_cameras
    assert model.ceal_config["name"] == name
    assert model.class_names == ("car", "truck", "pedestrian", "cyclist")
    assert not model.training


def test_lidar_only_detector_predicts_boxes_without_reading_cameras(tmp_path):
    frames = make_frames(tmp_path, 2, cameras=False)
    model = build_detector("pointpillars_lite", **{"model.bbox_head.score_threshold": 0.0,
                                                   "model.bbox_head.max_detections": 5})
    detections = model.predict(_batch(model, frames))
    assert len(detections) == 2
    for det in detections:
        assert det.boxes.shape == (5, 7) and det.scores.shape == (5,) and det.labels.shape == (5,)
        assert torch.isfinite(det.boxes).all()
        assert ((det.labels >= 0) & (det.labels < 4)).all()


def test_camera_detector_names_the_frame_without_cameras_and_the_fix(tmp_path, tiny_detector):
    frames = make_frames(tmp_path, 1, cameras=False)
    with pytest.raises(ValueError, match=r"test-0000.*pointpillars_lite"):
        _batch(tiny_detector, frames)


def test_unknown_config_name_lists_the_shipped_configs():
    with pytest.raises(FileNotFoundError, match="bevfusion_tiny"):
        load_config("no_such_detector")


def test_config_overrides_replace_nested_values_and_reject_unknown_sections():
    config = load_config("bevfusion_tiny", **{"model.bbox_head.dropout": 0.5})
    assert config["model"]["bbox_head"]["dropout"] == 0.5
    with pytest.raises(KeyError, match="nosuch"):
        load_config("bevfusion_tiny", **{"model.nosuch.x": 1})


def test_build_is_reproducible_from_its_seed():
    a, b, c = (build_detector("bevfusion_tiny", seed=s) for s in (3, 3, 4))
    wa, wb, wc = (m.bbox_head.regression_out.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_camera_lift_puts_each_depth_bin_on_the_pixel_ray(tiny_detector):
    """A pixel at the principal point of a forward camera looks straight along LiDAR +x."""
    branch = tiny_detector.camera_branch
    cam2img = torch.tensor(CAM2IMG, dtype=torch.float32).unsqueeze(0)
    lidar2cam = torch.tensor(LIDAR2CAM, dtype=torch.float32).unsqueeze(0)
    # A 1x1 feature grid has its single cell centred on the principal point.
    points = branch.frustum_points((1, 1), (IMAGE_H, IMAGE_W), cam2img, lidar2cam)
    depths = branch.depths
    expected = torch.stack([depths, torch.zeros_like(depths), torch.zeros_like(depths)], dim=-1)
    assert torch.allclose(points[0, :, 0, 0], expected, atol=1e-4)


def test_camera_features_land_in_front_of_the_camera_in_bev(frames, tiny_detector):
    batch = _batch(tiny_detector, frames[:1])
    with torch.no_grad():
        bev = tiny_detector.camera_branch(batch.images, batch.cam2img, batch.lidar2cam, tiny_detector.bev_shape)
    occupied = bev.abs().sum(dim=1)[0]  # (ny, nx)
    nx = tiny_detector.bev_shape[1]
    columns = torch.nonzero(occupied.sum(dim=0)).flatten()  # x cells with features
    assert len(columns) > 0
    assert columns.min() >= nx // 2, "a forward (+x) camera must only fill cells with x > 0"


@settings(max_examples=25, deadline=None)
@given(
    cx=st.floats(-38, 38), cy=st.floats(-38, 38), z=st.floats(-2.5, 0.5),
    length=st.floats(0.5, 10), width=st.floats(0.5, 3), height=st.floats(0.5, 4),
    yaw=st.floats(-math.pi + 1e-3, math.pi - 1e-3), label=st.integers(0, 3),
)
def test_head_targets_decode_back_to_the_ground_truth_box(tiny_detector, cx, cy, z, length, width, height, yaw,
                                                         label):
    head = tiny_detector.bbox_head
    ny, nx = tiny_detector.bev_shape
    hw = (ny // head.out_size_factor, nx // head.out_size_factor)
    box = torch.tensor([[cx, cy, z, length, width, height, yaw]])
    heatmap, target, cell, mask = head.get_targets([box], [torch.tensor([label])], hw)
    assert mask[0, 0] and heatmap[0, label].flatten()[cell[0, 0]] == 1.0
    regression = torch.zeros((1, 8, *hw))
    regression.flatten(2)[0, :, cell[0, 0]] = target[0, 0]
    logits = torch.full((1, 4, *hw), -10.0)
    logits[0, label].view(-1)[cell[0, 0]] = 10.0
    peaks = head.find_peaks(logits)
    decoded = head.decode_boxes(regression, peaks)
    assert peaks.label.tolist() == [label]
    assert torch.allclose(decoded[0, :6], box[0, :6], atol=1e-4)
    assert math.isclose(math.remainder(decoded[0, 6].item() - yaw, 2 * math.pi), 0.0, abs_tol=1e-4)


def test_one_training_step_reduces_the_loss_on_its_batch(frames):
    torch.manual_seed(0)
    model = build_detector("bevfusion_tiny", seed=0).train()
    batch = _batch(model, frames[:2], with_labels=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = sum(model.loss(batch).values())
    for _ in range(3):  # a few steps on one batch: a step must move downhill
        optimizer.zero_grad()
        loss = sum(model.loss(batch).values())
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = sum(model.loss(batch).values())
    assert set(model.loss(batch)) == {"loss_heatmap", "loss_bbox"}
    assert after < before


#: mmcv ops that have a CPU kernel in mmcv 2.1 and may appear on our path.
CPU_SAFE_MMCV_OPS = {"hard_voxelize_forward"}
CUDA_ONLY_MMCV_OPS = {"points_in_boxes_part_forward", "points_in_boxes_all_forward", "dynamic_point_to_voxel_forward",
                      "furthest_point_sampling_forward", "furthest_point_sampling_with_dist_forward"}


def test_training_predicting_and_scoring_call_only_mmcv_ops_with_cpu_kernels(frames, monkeypatch):
    """Every mmcv C++ op call is recorded; only CPU-capable ones may appear."""
    from mmcv.utils import ext_loader

    from ceal_pipeline.detector.scoring import score_frames

    ext = ext_loader.load_ext("_ext", ["hard_voxelize_forward"])
    called: set[str] = set()

    def recording(name, fn):
        def wrapper(*args, **kwargs):
            called.add(name)
            return fn(*args, **kwargs)
        return wrapper

    for name in dir(ext):
        fn = getattr(ext, name)
        if callable(fn) and not name.startswith("_"):
            monkeypatch.setattr(ext, name, recording(name, fn))

    model = build_detector("bevfusion_tiny").train()
    sum(model.loss(_batch(model, frames[:2], with_labels=True)).values()).backward()
    model.eval().predict(_batch(model, frames[:2]))
    score_frames(model, frames[:2], T=3, mode="head", device="cpu")
    assert called, "the pillar branch must voxelize with mmcv's hard voxelization"
    assert called <= CPU_SAFE_MMCV_OPS, f"ops without a CPU kernel or unreviewed: {called - CPU_SAFE_MMCV_OPS}"
    assert not called & CUDA_ONLY_MMCV_OPS


def test_grid_is_stated_once_and_a_contradicting_sub_config_is_rejected():
    model = build_detector("bevfusion_tiny")
    assert model.bev_shape == (160, 160)
    assert model.bbox_head.point_cloud_range == model.camera_branch.point_cloud_range == model.point_cloud_range
    with pytest.raises(ValueError, match=r"bbox_head.point_cloud_range.*disagrees"):
        build_detector("bevfusion_tiny", **{"model.bbox_head.point_cloud_range": [0, 0, 0, 1, 1, 1]})
