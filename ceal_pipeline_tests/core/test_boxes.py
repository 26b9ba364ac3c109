"""Spec: boxes travel as core.boxes.Boxes, LiDAR frame, bottom-centre origin, x y z l w h yaw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.boxes import Boxes

CAR = [10.0, -2.0, -1.5, 4.0, 2.0, 1.6, np.pi / 2]  # bottom centre at z = -1.5, heading along +y


def test_boxes_are_an_immutable_copy_of_an_n_by_7_array():
    given_values = np.array([CAR])
    boxes = Boxes(given_values)
    given_values[0, 0] = 99.0
    assert boxes.values[0, 0] == 10.0 and len(boxes) == 1
    with pytest.raises(ValueError, match="read-only"):
        boxes.values[0, 0] = 1.0
    assert len(Boxes(np.zeros(0))) == 0 and Boxes(np.zeros(0)).values.shape == (0, 7)
    assert boxes == Boxes([CAR]) and boxes != Boxes([CAR[:6] + [0.0]])
    with pytest.raises(ValueError, match=r"\(n, 7\) x y z l w h yaw .*lidar frame, bottom_centre origin"):
        Boxes(np.zeros((3, 9)))


def test_the_gravity_centre_is_half_the_height_above_the_bottom_centre():
    boxes = Boxes([CAR])
    centre = boxes.to_origin(0.5)
    assert centre[0, 2] == pytest.approx(-1.5 + 0.8)
    np.testing.assert_array_equal(Boxes.from_origin(centre, 0.5).values, boxes.values)
    np.testing.assert_array_equal(Boxes.from_origin(boxes.values, 0.0).values, boxes.values)


def test_corners_are_the_floor_counter_clockwise_then_the_roof_in_the_lidar_frame():
    corners = Boxes([CAR]).corners()[0]
    # Heading +y: the box's +l/2 axis points along +y, its +w/2 axis along -x.
    np.testing.assert_allclose(corners[0], [10.0 - 1.0, -2.0 + 2.0, -1.5], atol=1e-12)
    np.testing.assert_allclose(corners[:4, 2], -1.5)
    np.testing.assert_allclose(corners[4:, 2], -1.5 + 1.6)
    np.testing.assert_allclose(corners[4:, :2], corners[:4, :2])
    floor = corners[:4, :2] - corners[:4, :2].mean(axis=0)
    signed_area = 0.5 * np.sum(floor[:, 0] * np.roll(floor[:, 1], -1) - np.roll(floor[:, 0], -1) * floor[:, 1])
    assert signed_area == pytest.approx(4.0 * 2.0)  # counter-clockwise seen from above, l x w


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-3, 3), st.floats(0.1, 10),
                          st.floats(0.1, 5), st.floats(0.1, 4), st.floats(-np.pi, np.pi)), min_size=1, max_size=8))
def test_the_corners_centre_is_the_gravity_centre_and_their_extents_are_the_sizes(rows):
    boxes = Boxes(np.array(rows))
    corners = boxes.corners()
    np.testing.assert_allclose(corners.mean(axis=1), boxes.to_origin(0.5)[:, :3], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(corners[:, 0] - corners[:, 1], axis=1), boxes.values[:, 3], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(corners[:, 1] - corners[:, 2], axis=1), boxes.values[:, 4], atol=1e-9)
    np.testing.assert_array_equal(boxes.bev_centres(), boxes.values[:, :2])
