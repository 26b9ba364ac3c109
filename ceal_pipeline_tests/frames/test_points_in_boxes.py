"""Specification of the numpy points-in-rotated-box test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.frames.box_conventions import box_corners
from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline_tests.frames.box_masks import points_in_boxes

boxes_strategy = st.lists(
    st.tuples(
        st.floats(-60, 60), st.floats(-60, 60), st.floats(-3, 1),  # bottom centre
        st.floats(0.3, 12), st.floats(0.3, 3), st.floats(0.5, 4),  # l, w, h
        st.floats(-np.pi, np.pi),  # yaw
    ),
    min_size=1, max_size=8,
).map(lambda rows: np.array(rows, dtype=np.float64))


def _local_to_lidar(box: np.ndarray, local: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(box[6]), np.sin(box[6])
    x = box[0] + local[:, 0] * cos - local[:, 1] * sin
    y = box[1] + local[:, 0] * sin + local[:, 1] * cos
    return np.column_stack([x, y, box[2] + local[:, 2]])


def _brute_force(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """One point and one box at a time, written as plainly as possible."""
    mask = np.zeros((len(points), len(boxes)), dtype=bool)
    for k, (x, y, z, length, width, height, yaw) in enumerate(boxes):
        for p, (px, py, pz) in enumerate(points[:, :3]):
            dx, dy = px - x, py - y
            lx = dx * np.cos(-yaw) - dy * np.sin(-yaw)
            ly = dx * np.sin(-yaw) + dy * np.cos(-yaw)
            mask[p, k] = abs(lx) < length / 2 and abs(ly) < width / 2 and z <= pz <= z + height
    return mask


@settings(max_examples=60, deadline=None)
@given(boxes=boxes_strategy, seed=st.integers(0, 2**31))
def test_points_sampled_inside_a_box_are_inside_it_and_points_beyond_it_are_not(boxes, seed):
    rng = np.random.default_rng(seed)
    for k, box in enumerate(boxes):
        half = np.array([box[3] / 2, box[4] / 2])
        inside_local = np.column_stack([rng.uniform(-0.98, 0.98, (50, 2)) * half, rng.uniform(0.02, 0.98, 50) * box[5]])
        beyond = inside_local.copy()
        beyond[:, 0] = np.sign(rng.uniform(-1, 1, 50)) * half[0] * rng.uniform(1.02, 2.0, 50)
        mask_in = points_in_boxes(_local_to_lidar(box, inside_local), box[None])
        mask_out = points_in_boxes(_local_to_lidar(box, beyond), box[None])
        assert mask_in.all(), f"box {k}: a point inside was missed"
        assert not mask_out.any(), f"box {k}: a point beyond the box's length was counted"


@settings(max_examples=40, deadline=None)
@given(boxes=boxes_strategy, seed=st.integers(0, 2**31))
def test_vectorised_mask_matches_brute_force_per_point_test(boxes, seed):
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-65, 65, (300, 2)), rng.uniform(-4, 5, 300)])
    # add points right next to each box so the comparison is not only about empty space
    near = [_local_to_lidar(b, rng.uniform(-0.7, 0.7, (20, 3)) * [b[3], b[4], b[5]] + [0, 0, b[5] / 2]) for b in boxes]
    points = np.concatenate([points, *near])
    expected = _brute_force(points, boxes)
    np.testing.assert_array_equal(points_in_boxes(points, boxes), expected)
    np.testing.assert_array_equal(count_points_in_boxes(points, boxes), expected.sum(axis=0))


@settings(max_examples=30, deadline=None)
@given(boxes=boxes_strategy, angle=st.floats(-np.pi, np.pi), shift=st.tuples(st.floats(-20, 20), st.floats(-20, 20)))
def test_membership_is_invariant_to_moving_points_and_boxes_together(boxes, angle, shift):
    rng = np.random.default_rng(0)
    points = np.concatenate([_local_to_lidar(b, rng.uniform(-0.6, 0.6, (30, 3)) * [b[3], b[4], b[5]] + [0, 0, b[5] / 2])
                             for b in boxes])
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    moved_points = points.copy()
    moved_points[:, :2] = points[:, :2] @ rotation.T + shift
    moved_boxes = boxes.copy()
    moved_boxes[:, :2] = boxes[:, :2] @ rotation.T + shift
    moved_boxes[:, 6] = boxes[:, 6] + angle
    np.testing.assert_array_equal(points_in_boxes(points, boxes), points_in_boxes(moved_points, moved_boxes))


def test_box_corners_lie_on_the_box_surface_and_its_centre_inside():
    box = np.array([[3.0, -2.0, -1.5, 4.0, 2.0, 1.5, 0.7]])
    corners = box_corners(box)[0]
    shrunk = (corners - corners.mean(axis=0)) * 0.99 + corners.mean(axis=0)
    grown = (corners - corners.mean(axis=0)) * 1.01 + corners.mean(axis=0)
    assert points_in_boxes(shrunk, box).all()
    assert not points_in_boxes(grown, box).any()
    assert points_in_boxes(corners.mean(axis=0, keepdims=True), box).all()


def test_empty_inputs_give_empty_results_and_bad_shapes_are_named():
    assert points_in_boxes(np.zeros((0, 4)), np.zeros((3, 7))).shape == (0, 3)
    assert count_points_in_boxes(np.zeros((5, 4)), np.zeros((0, 7))).shape == (0,)
    with pytest.raises(ValueError, match="points must be"):
        points_in_boxes(np.zeros((5, 2)), np.zeros((1, 7)))


@pytest.mark.mmdet3d
def test_mask_agrees_with_mmcv_points_in_boxes_cpu():
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("mmcv.ops")
    rng = np.random.default_rng(3)
    boxes = np.column_stack([rng.uniform(-20, 20, (12, 2)), rng.uniform(-2, 0, 12), rng.uniform(1, 8, 12),
                             rng.uniform(0.5, 3, 12), rng.uniform(1, 3, 12), rng.uniform(-np.pi, np.pi, 12)])
    points = np.column_stack([rng.uniform(-25, 25, (4000, 2)), rng.uniform(-3, 3, 4000)])
    theirs = ops.points_in_boxes_cpu(torch.from_numpy(points[None]).float(), torch.from_numpy(boxes[None]).float())
    ours = points_in_boxes(points.astype(np.float32), boxes.astype(np.float32))
    # float32 rounding may flip points within a micrometre of a face; none are that close here
    np.testing.assert_array_equal(ours, theirs[0].numpy().astype(bool))
