"""Specification of the conversions from source box conventions to the record's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.frames.box_conventions import (
    camera_boxes_to_lidar,
    quaternion_wxyz_to_yaw,
    to_bottom_origin,
    wrap_angle,
)

#: KITTI-like LiDAR -> rectified camera transform: axis permutation, small rotation, offset.
KITTI_LIKE_LIDAR2CAM = np.array([
    [7.5e-03, -9.9997e-01, -6.2e-04, -2.7e-03],
    [1.5e-02, 7.3e-04, -9.9989e-01, -7.6e-02],
    [9.9986e-01, 7.5e-03, 1.5e-02, -2.7e-01],
    [0.0, 0.0, 0.0, 1.0],
])


@settings(max_examples=100, deadline=None)
@given(yaw=st.floats(-np.pi + 1e-6, np.pi - 1e-6), scale=st.floats(0.1, 10))
def test_yaw_of_a_pure_z_rotation_quaternion_is_its_angle_even_unnormalised(yaw, scale):
    quaternion = scale * np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    assert quaternion_wxyz_to_yaw(quaternion)[0] == pytest.approx(yaw, abs=1e-9)


def test_quaternion_with_zero_norm_is_rejected():
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        quaternion_wxyz_to_yaw(np.zeros(4))


def test_centre_origin_boxes_drop_by_half_their_height_and_bottom_ones_stay():
    boxes = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.6, 0.3]])
    np.testing.assert_allclose(to_bottom_origin(boxes), [[1.0, 2.0, -0.3, 4.0, 2.0, 1.6, 0.3]])
    np.testing.assert_allclose(to_bottom_origin(boxes, origin_z=0.0), boxes)


def _ideal_lidar2cam() -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]  # x right = -y, y down = -z, z forward = x
    return m


@settings(max_examples=100, deadline=None)
@given(ry=st.floats(-np.pi, np.pi), x=st.floats(-20, 20), z=st.floats(1, 60))
def test_camera_boxes_with_ideal_calibration_follow_mmdet3d_yaw_rule(ry, x, z):
    # mmdet3d's Box3DMode CAM -> LIDAR without correct_yaw: yaw = -ry - pi/2
    cam_box = np.array([[x, 1.6, z, 4.0, 1.5, 1.8, ry]])  # l, h, w
    lidar = camera_boxes_to_lidar(cam_box, _ideal_lidar2cam())[0]
    np.testing.assert_allclose(lidar[:3], [z, -x, -1.6], atol=1e-9)
    np.testing.assert_allclose(lidar[3:6], [4.0, 1.8, 1.5])  # l, w, h
    assert abs(wrap_angle(lidar[6] - (-ry - np.pi / 2))) < 1e-9


@pytest.mark.mmdet3d
def test_camera_boxes_match_mmdet3d_camera_instance_boxes_convert_to():
    pytest.importorskip("torch")
    structures = pytest.importorskip("mmdet3d.structures")
    rng = np.random.default_rng(0)
    cam_boxes = np.column_stack([rng.uniform(-10, 10, 20), rng.uniform(1, 2, 20), rng.uniform(5, 50, 20),
                                 rng.uniform(3, 5, 20), rng.uniform(1.4, 2, 20), rng.uniform(1.5, 2, 20),
                                 rng.uniform(-np.pi, np.pi, 20)])
    theirs = structures.CameraInstance3DBoxes(cam_boxes).convert_to(
        structures.Box3DMode.LIDAR, np.linalg.inv(KITTI_LIKE_LIDAR2CAM), correct_yaw=True).tensor.numpy()
    ours = camera_boxes_to_lidar(cam_boxes, KITTI_LIKE_LIDAR2CAM)
    np.testing.assert_allclose(ours[:, :6], theirs[:, :6], atol=1e-4)
    np.testing.assert_allclose(wrap_angle(ours[:, 6] - theirs[:, 6]), 0.0, atol=1e-4)


def test_camera_box_conversion_rejects_a_non_4x4_calibration():
    with pytest.raises(ValueError, match="4x4"):
        camera_boxes_to_lidar(np.zeros((1, 7)), np.eye(3))
