"""Spec: heatmap entropy is the binary entropy of the head's sigmoid heatmap, summed over
classes per cell and averaged over each frame's most uncertain cells, in nats."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ceal_pipeline.core.heatmap_entropy import (
    HEATMAP_TOP_K,
    binary_entropy,
    heatmap_cell_entropy,
    heatmap_entropy,
    top_k_mean,
)

H_QUARTER = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # 0.562335... nats


def test_binary_entropy_matches_hand_computed_values():
    np.testing.assert_allclose(binary_entropy([0.0, 0.5, 1.0, 0.25, 0.75]),
                               [0.0, math.log(2), 0.0, H_QUARTER, H_QUARTER], rtol=1e-15)


@given(st.floats(0.0, 1.0))
def test_binary_entropy_is_symmetric_and_maximal_at_one_half(p):
    assert 0.0 <= binary_entropy(p) <= binary_entropy(0.5) == pytest.approx(math.log(2), rel=1e-15)
    assert binary_entropy(p) == pytest.approx(binary_entropy(1.0 - p), abs=1e-12)


def test_cell_entropy_sums_the_binary_entropies_of_the_classes():
    # One frame, two classes, a 1 x 3 grid: (0.5, 0) | (0.25, 0.25) | (1, 0).
    probs = np.array([[0.5, 0.25, 1.0], [0.0, 0.25, 0.0]]).reshape(1, 1, 2, 1, 3)
    np.testing.assert_allclose(heatmap_cell_entropy(probs), [[math.log(2), 2 * H_QUARTER, 0.0]], rtol=1e-15)


def test_mc_samples_are_averaged_before_the_entropy_is_taken():
    # Two passes that disagree completely (0 then 1) average to a coin flip: predictive
    # entropy log 2, although each pass alone is certain.
    probs = np.array([0.0, 1.0]).reshape(2, 1, 1, 1, 1)
    np.testing.assert_allclose(heatmap_entropy(probs), [math.log(2)])


def test_frame_entropy_is_the_mean_of_the_top_k_cells():
    probs = np.array([0.5, 0.25, 0.0, 0.02]).reshape(1, 1, 1, 2, 2)
    np.testing.assert_allclose(heatmap_entropy(probs, top_k=1), [math.log(2)])
    np.testing.assert_allclose(heatmap_entropy(probs, top_k=2), [(math.log(2) + H_QUARTER) / 2])
    # More cells than the grid has: the mean over the whole grid.
    expected_all = (math.log(2) + H_QUARTER + binary_entropy(0.02)) / 4
    np.testing.assert_allclose(heatmap_entropy(probs, top_k=HEATMAP_TOP_K), [expected_all])


def test_each_frame_of_a_batch_is_scored_on_its_own_cells():
    probs = np.zeros((1, 2, 1, 2, 2))
    probs[0, 0, 0, 0, 0] = 0.5
    probs[0, 1] = 0.25
    np.testing.assert_allclose(heatmap_entropy(probs, top_k=2), [math.log(2) / 2, H_QUARTER])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (1, 2, 3, 4, 5), elements=st.floats(0.0, 1.0)), st.integers(0, 2**32 - 1),
       st.integers(1, 25))
def test_heatmap_entropy_does_not_depend_on_the_order_of_the_cells(probs, seed, k):
    order = np.random.default_rng(seed).permutation(20)
    shuffled = probs.reshape(1, 2, 3, 20)[..., order].reshape(1, 2, 3, 4, 5)
    np.testing.assert_array_equal(heatmap_entropy(shuffled, top_k=k), heatmap_entropy(probs, top_k=k))


@given(arrays(np.float64, (3, 12), elements=st.floats(0.0, 5.0)))
def test_top_k_mean_lies_between_the_mean_and_the_max_and_shrinks_as_k_grows(values):
    means = [top_k_mean(values, k) for k in range(1, 13)]
    np.testing.assert_allclose(means[0], values.max(axis=1))
    np.testing.assert_allclose(means[-1], values.mean(axis=1))
    for wider, narrower in zip(means[1:], means[:-1]):
        assert (wider <= narrower + 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (1, 1, 4, 6, 6), elements=st.floats(0.3, 0.7)),
       arrays(np.float64, (1, 1, 4, 6, 6), elements=st.floats(0.0, 0.01) | st.floats(0.99, 1.0)))
def test_a_hesitant_heatmap_scores_above_a_confident_one(hesitant, confident):
    # h(0.3) = 0.611 > h(0.01) = 0.056 nats, cell by cell and class by class.
    assert heatmap_entropy(hesitant)[0] > heatmap_entropy(confident)[0]


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.full((1, 1, 2, 2), 0.5), r"\(T, B, C, H, W\)"),
        (np.full((1, 1, 1, 2, 2), 3.0), "apply the sigmoid"),
        (np.full((1, 1, 1, 2, 2), np.nan), "not a probability"),
    ],
)
def test_bad_heatmaps_are_rejected_with_clear_errors(probs, message):
    with pytest.raises(ValueError, match=message):
        heatmap_entropy(probs)


def test_top_k_must_be_a_positive_number_of_cells():
    with pytest.raises(ValueError, match="top_k"):
        heatmap_entropy(np.full((1, 1, 1, 2, 2), 0.5), top_k=0)
