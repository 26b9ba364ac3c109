"""Spec: localization entropy is the Gaussian differential entropy of MC box samples."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.localization import (
    aggregate_per_frame,
    embed_boxes,
    localization_and_class_entropy,
    localization_entropy,
    localization_information,
    minimum_localization_entropy,
)


def test_localization_entropy_matches_the_closed_form_for_a_known_gaussian():
    rng = np.random.default_rng(0)
    sigmas = np.array([0.5, 0.3, 0.2, 0.1, 0.05, 0.08])  # x y z l w h, metres
    t = 200_000
    boxes = np.zeros((t, 1, 7))
    boxes[:, 0, :6] = rng.normal(0.0, sigmas, size=(t, 6))
    boxes[:, 0, 6] = rng.normal(0.3, 0.01, size=t)  # yaw, small spread
    floor = 1e-4
    # Closed form: 0.5 log det(2 pi e Sigma). The yaw's sin/cos embedding has
    # a (near) rank-one 2x2 covariance J J^T * var(yaw), J = (cos, -sin),
    # plus the floor on both axes: eigenvalues var(yaw) + floor and floor.
    var = np.r_[sigmas**2 + floor, 0.01**2 + floor, floor]
    expected = 0.5 * (8 * math.log(2 * math.pi * math.e) + np.log(var).sum())
    np.testing.assert_allclose(localization_entropy(boxes, covariance_floor=floor), [expected], atol=0.02)


def test_single_sample_or_identical_samples_give_the_finite_floor_entropy():
    boxes = np.tile(np.array([10.0, -2.0, 0.0, 4.5, 1.9, 1.6, 0.7]), (1, 3, 1))
    floor_entropy = minimum_localization_entropy(1e-3)
    np.testing.assert_allclose(localization_entropy(boxes, 1e-3), np.full(3, floor_entropy))
    np.testing.assert_allclose(localization_entropy(np.repeat(boxes, 5, axis=0), 1e-3), np.full(3, floor_entropy))


def test_yaw_wraps_around_pi_so_opposite_sides_of_the_seam_are_close():
    base = np.array([0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0])
    across_seam = np.tile(base, (4, 1, 1))
    across_seam[:, 0, 6] = [math.pi - 0.01, -math.pi + 0.01, math.pi - 0.02, -math.pi + 0.02]
    same_side = across_seam.copy()
    same_side[:, 0, 6] = [0.01, -0.01, 0.02, -0.02]
    np.testing.assert_allclose(localization_entropy(across_seam), localization_entropy(same_side), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 6), st.floats(0.01, 3.0), st.integers(0, 2**32 - 1))
def test_more_spread_means_more_entropy_for_every_object(t, k, scale, seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(t, k, 7))
    # Scaling is exact for the linear coordinates; yaw goes through sin/cos,
    # so keep it fixed here (the wrap-around test covers yaw).
    noise[..., 6] = 0.0
    centre = rng.uniform(-50, 50, size=(1, k, 7))
    tight = localization_entropy(centre + 0.01 * noise)
    loose = localization_entropy(centre + 0.01 * (1 + scale) * noise)
    assert tight.shape == loose.shape == (k,)
    assert np.isfinite(loose).all()
    assert (loose >= tight - 1e-9).all()


def test_embedding_replaces_yaw_with_sin_and_cos():
    out = embed_boxes(np.array([[1, 2, 3, 4, 5, 6, math.pi / 2]]))
    np.testing.assert_allclose(out, [[1, 2, 3, 4, 5, 6, 1.0, 0.0]], atol=1e-12)


def test_bad_box_samples_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match=r"\(T, K, 7\)"):
        localization_entropy(np.zeros((3, 2, 6)))
    with pytest.raises(ValueError, match="non-finite box"):
        localization_entropy(np.full((3, 2, 7), np.nan))
    with pytest.raises(ValueError, match="covariance_floor"):
        localization_entropy(np.zeros((3, 2, 7)), covariance_floor=0.0)


def test_per_frame_aggregation_mean_max_sum_and_empty_frames():
    scores = np.array([1.0, 3.0, -2.0, 5.0])
    frame = np.array([0, 0, 2, 2])
    np.testing.assert_allclose(aggregate_per_frame(scores, frame, 4, "mean", empty=-9.0), [2.0, -9.0, 1.5, -9.0])
    np.testing.assert_allclose(aggregate_per_frame(scores, frame, 4, "max"), [3.0, 0.0, 5.0, 0.0])
    np.testing.assert_allclose(aggregate_per_frame(scores, frame, 4, "sum"), [4.0, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(aggregate_per_frame(np.zeros(0), np.zeros(0, int), 2), [0.0, 0.0])


def test_per_frame_aggregation_rejects_objects_outside_the_frames():
    with pytest.raises(ValueError, match="outside"):
        aggregate_per_frame(np.ones(2), np.array([0, 5]), 3)
    with pytest.raises(ValueError, match="how="):
        aggregate_per_frame(np.ones(2), np.array([0, 1]), 3, how="median")


def test_class_entropy_adds_to_localization_entropy_in_nats():
    boxes = np.zeros((2, 1, 7))
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # mean (0.5, 0.5): log 2 nats
    expected = localization_entropy(boxes) + math.log(2)
    np.testing.assert_allclose(localization_and_class_entropy(boxes, probs), expected)


def test_localization_information_is_the_entropy_above_the_floor_and_zero_for_a_certain_box():
    # Two samples at x = -a and +a: unbiased variance 2 a^2 on one axis, none elsewhere,
    # so 0.5 log det(I + Sigma / floor) = 0.5 log(1 + 2 a^2 / floor).
    boxes = np.zeros((2, 2, 7))
    boxes[:, 0, 0] = [-0.01, 0.01]
    np.testing.assert_allclose(localization_information(boxes, 1e-4), [0.5 * math.log(3), 0.0], atol=1e-12)
    np.testing.assert_allclose(
        localization_information(boxes, 1e-4), localization_entropy(boxes, 1e-4) - minimum_localization_entropy(1e-4),
        atol=1e-12,
    )


def test_a_wild_box_with_few_passes_still_gets_a_finite_entropy_above_the_floor():
    # An untrained head's boxes reach 1e6 m and more; with T = 3 passes the sample covariance has
    # rank 2, and rounding in its six zero directions exceeds the floor (a determinant of the
    # floored matrix came out negative for about half of such objects). Every entropy must stay finite.
    samples = np.random.default_rng(0).normal(size=(3, 20, 7)) * 1e6
    entropy = localization_entropy(samples, covariance_floor=1e-4)
    assert np.isfinite(entropy).all() and (entropy > minimum_localization_entropy(1e-4) + 10).all()
