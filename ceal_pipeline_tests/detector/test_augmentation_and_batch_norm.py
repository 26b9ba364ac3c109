"""Specification of what makes the trained detector generalise and its saved model match
its weights: global LiDAR augmentation consistent across points, boxes and cameras, and
BatchNorm statistics recalibrated over the labeled frames after training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ceal_pipeline.detector.augmentation import GlobalAugmentation, augment_batch, transform_boxes, transform_points
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline.detector.training import recalibrate_batch_norm, train_detector

TINY_LIDAR = {"model.camera_branch": None, "model.fuser": None, "data.image_size": None}


def _corners_bev(box: np.ndarray) -> np.ndarray:
    x, y, _, length, width, _, yaw = box
    local = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, -0.5], [-0.5, 0.5]]) * [length, width]
    c, s = math.cos(yaw), math.sin(yaw)
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def _front_corner_points(box: np.ndarray) -> np.ndarray:
    """The two corners at the box's front (along its heading) and its bottom centre, as (3, 3) points."""
    corners = _corners_bev(box)
    return np.column_stack([np.vstack([corners[:2], box[:2]]), np.full(3, box[2])])


@pytest.mark.parametrize("seed", range(6))
def test_boxes_move_with_their_points_under_any_flip_rotation_and_scale(seed):
    rng = np.random.default_rng(seed)
    box = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20), -1.5, 4.2, 1.8, 1.6, rng.uniform(-math.pi, math.pi)])
    matrix = GlobalAugmentation(flip=True, rotation=math.pi, scaling=(0.8, 1.2)).draw(rng)
    moved = transform_boxes(box[None], matrix)[0]
    # The transformed box's front corners and centre are the transformed points of the
    # original's (a flip swaps left and right, so compare as sets).
    expected = transform_points(_front_corner_points(box), matrix)
    got = _front_corner_points(moved)
    np.testing.assert_allclose(sorted(map(tuple, np.round(expected, 9))), sorted(map(tuple, np.round(got, 9))),
                               atol=1e-6)
    scale = abs(np.linalg.det(matrix)) ** (1 / 3)
    np.testing.assert_allclose(moved[3:6], box[3:6] * scale)


def test_a_flip_mirrors_the_heading_and_no_augmentation_is_the_identity():
    box = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3]])
    mirror_y = np.diag([1.0, -1.0, 1.0])
    np.testing.assert_allclose(transform_boxes(box, mirror_y)[0], [10.0, -5.0, -1.0, 4.0, 2.0, 1.5, -0.3])
    identity = GlobalAugmentation(flip=False, rotation=0.0, scaling=(1.0, 1.0)).draw(np.random.default_rng(0))
    np.testing.assert_allclose(identity, np.eye(3))
    assert GlobalAugmentation.from_config({}) is None
    with pytest.raises(ValueError, match="unknown keys"):
        GlobalAugmentation.from_config({"augmentation": {"flip": True, "jitter": 0.1}})
    with pytest.raises(ValueError, match="scaling"):
        GlobalAugmentation(scaling=(1.2, 0.9))


def test_cameras_still_see_the_same_points_after_the_augmentation(frames):
    from ceal_pipeline.detector.builder import load_config

    config = load_config("bevfusion_tiny")
    batch = load_batch(frames[:2], class_names=("car", "truck", "pedestrian", "cyclist"),
                       point_cloud_range=config["model"]["point_cloud_range"], image_size=(64, 128), with_labels=True)
    augmentation = GlobalAugmentation(flip=True, rotation=1.0, scaling=(0.9, 1.1))
    augmented = augment_batch(batch, augmentation, np.random.default_rng(3), config["model"]["point_cloud_range"])
    # Redraw the same transforms to map a point by hand.
    rng = np.random.default_rng(3)
    for b in range(2):
        matrix = augmentation.draw(rng)
        point = np.array([12.0, -4.0, 0.5])
        moved = matrix @ point
        before = batch.lidar2cam[b][0].double().numpy() @ np.r_[point, 1.0]
        after = augmented.lidar2cam[b][0].double().numpy() @ np.r_[moved, 1.0]
        np.testing.assert_allclose(after, before, atol=1e-4)
        np.testing.assert_allclose(augmented.gt_boxes[b].numpy(),
                                   transform_boxes(batch.gt_boxes[b].numpy(), matrix), atol=1e-4)
        assert len(augmented.points[b]) > 0.8 * len(batch.points[b])


def _heatmap_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.bbox_head.forward_deterministic(model.extract_bev(batch))[0]


def _train_mode_logits(model, batch) -> torch.Tensor:
    """The logits with every BatchNorm normalising by the batch's own statistics (as in training),
    without touching the running statistics (momentum 0), dropout off."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.momentum = 0.0
        m.train()
    try:
        return _heatmap_logits(model, batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


def test_recalibrated_batch_norm_makes_eval_outputs_on_training_frames_match_train_mode_ones(frames, tmp_path):
    from ceal_pipeline.detector.builder import load_config
    from ceal_pipeline.detector.checkpoints import load_detector

    def trained(recalibrate: bool):
        config = load_config("bevfusion_tiny", **TINY_LIDAR, **{"train.bn_recalibration": recalibrate,
                                                                  "train.augmentation": None})
        checkpoint = train_detector(frames, config, tmp_path / f"bn-{recalibrate}", epochs=2, seed=1, device="cpu",
                                    batch_size=6, num_workers=0)
        return load_detector(checkpoint.path, device="cpu")[0], config

    stale, config = trained(False)
    batch = load_batch(frames, class_names=stale.class_names, point_cloud_range=stale.point_cloud_range,
                       image_size=None)

    def gap(model) -> float:
        eval_logits, train_logits = _heatmap_logits(model.eval(), batch), _train_mode_logits(model, batch)
        return float((eval_logits - train_logits).abs().mean() / train_logits.abs().mean())

    fresh, _ = trained(True)
    # Same weights up to the statistics: recalibration changes no parameter.
    for (name, a), (_, b) in zip(stale.named_parameters(), fresh.named_parameters()):
        assert torch.equal(a, b), name
    assert gap(fresh) < 0.02, "eval mode on the training frames reproduces train mode after recalibration"
    assert gap(stale) > 5 * gap(fresh), "with momentum 0.01 after 2 steps the running statistics are stale"
    # Recalibrating again over the same frames is idempotent and returns the layers it reset.
    layers = recalibrate_batch_norm(fresh, frames, device="cpu", batch_size=6, num_workers=0)
    assert layers == sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fresh.modules()) > 0
    assert gap(fresh) < 0.02
