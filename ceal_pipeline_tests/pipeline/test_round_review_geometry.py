"""The review's geometry: points coloured by height, boxes projected into the cameras."""

from __future__ import annotations

import numpy as np

from ceal_pipeline.frames.box_conventions import box_corners
from ceal_pipeline.frames.records import CameraRecord
from ceal_pipeline.review.scene import BOX_EDGES, height_colours, projected_box_edges

#: x forward, y left, z up (LiDAR) -> x right, y down, z forward (camera)
LIDAR2CAM = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
CAMERA = CameraRecord("CAM_FRONT", "front.jpg", np.array([[1000.0, 0, 960], [0, 1000, 540], [0, 0, 1]]),
                      LIDAR2CAM, 1920, 1080)


def test_points_are_coloured_from_blue_at_the_bottom_to_red_at_the_top():
    z = np.concatenate([[-50.0], np.linspace(-2.0, 3.0, 101), [80.0]])  # two outliers clip to the ends
    colours = height_colours(z).astype(int)

    assert colours.dtype == np.int64 and colours.shape == (103, 3)
    assert colours[0].tolist() == colours[1].tolist() == [30, 60, 200]
    assert colours[-1].tolist() == colours[-2].tolist() == [220, 40, 30]
    assert np.abs(colours[51] - [40, 200, 60]).max() <= 10  # mid-height: the ramp's green


def test_a_box_in_front_of_the_camera_projects_each_edge_between_its_corners_pixels():
    box = np.array([[12.0, 1.0, -1.5, 4.0, 2.0, 1.6, 0.4]])
    corners = box_corners(box)[0]
    in_camera = corners @ LIDAR2CAM[:3, :3].T
    pixels = in_camera @ CAMERA.cam2img.T
    pixels = pixels[:, :2] / pixels[:, 2:]

    segments, index = projected_box_edges(box, CAMERA)

    assert segments.shape == (12, 2, 2) and index.tolist() == [0] * 12
    np.testing.assert_allclose(segments, pixels[BOX_EDGES], atol=1e-9)


def test_edges_behind_the_camera_are_dropped_and_crossing_ones_clipped_to_finite_pixels():
    behind = np.array([[-10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]])
    crossing = np.array([[0.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]])  # spans x = -2 .. 2

    assert projected_box_edges(behind, CAMERA)[0].shape == (0, 2, 2)
    segments, _ = projected_box_edges(crossing, CAMERA)
    assert 0 < len(segments) < 12 and np.isfinite(segments).all()
    assert projected_box_edges(np.zeros((0, 7)), CAMERA)[0].shape == (0, 2, 2)


def test_the_unbought_candidates_to_compare_are_the_best_scoring_frames_not_bought():
    from ceal_pipeline.review.scene import top_unbought

    ids = ["a", "b", "c", "d", "e"]
    scores = np.array([-3.0, np.nan, -1.0, -2.0, -0.5])

    assert top_unbought(ids, scores, bought=["e"], n=2) == [("c", -1.0), ("d", -2.0)]
    assert top_unbought(ids, scores, bought=[], n=10) == [("e", -0.5), ("c", -1.0), ("d", -2.0), ("a", -3.0)]
    assert top_unbought(ids, scores, bought=["e"], n=0) == []
