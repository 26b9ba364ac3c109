"""Spec: acquisition functions over MC class probabilities (T, N, C), larger = more uncertain."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ceal_pipeline.core.acquisition import (
    ACQUISITION_FUNCTIONS,
    bald,
    expected_entropy,
    get_acquisition_function,
    least_confidence,
    margin,
    predictive_entropy,
    variation_ratios,
)

LOG2 = math.log(2.0)


def test_predictive_entropy_matches_hand_computed_values_including_zero_and_one():
    probs = np.array(
        [
            [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.9, 0.1]],
            [[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.9, 0.1]],
        ]
    )
    expected = [
        0.0,  # certain: 0 log 0 contributes 0, not NaN
        LOG2,
        LOG2,  # samples disagree completely: mean is (0.5, 0.5)
        -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)),
    ]
    with np.errstate(all="raise"):  # no 0 * -inf, no log(0) warnings
        np.testing.assert_allclose(predictive_entropy(probs), expected, atol=1e-12)


def test_bald_is_zero_when_samples_agree_and_log2_when_confident_samples_disagree():
    probs = np.array([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.5], [1.0, 0.0]]])
    with np.errstate(all="raise"):
        np.testing.assert_allclose(bald(probs), [0.0, 0.0, LOG2], atol=1e-12)
        np.testing.assert_allclose(expected_entropy(probs), [0.0, LOG2, 0.0], atol=1e-12)


def test_bald_hand_computed_for_partial_disagreement():
    probs = np.array([[[0.8, 0.2]], [[0.4, 0.6]]])
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    expected = h([0.6, 0.4]) - 0.5 * (h([0.8, 0.2]) + h([0.4, 0.6]))
    np.testing.assert_allclose(bald(probs), [expected], rtol=1e-12)


def test_variation_ratios_count_disagreement_with_the_majority_vote():
    # 4 MC samples over 3 classes; item 0 unanimous, item 1 votes 3:1, item 2 votes 2:1:1.
    votes = np.array([[0, 1, 0], [0, 1, 1], [0, 1, 2], [0, 2, 0]])
    probs = np.full((4, 3, 3), 0.05)
    for t in range(4):
        for n in range(3):
            probs[t, n, votes[t, n]] = 0.9
    np.testing.assert_allclose(variation_ratios(probs), [0.0, 0.25, 0.5])


def test_margin_and_least_confidence_use_the_mc_mean():
    probs = np.array([[[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], [[0.5, 0.4, 0.1], [0.0, 0.0, 1.0]]])
    # means: (0.6, 0.3, 0.1) and (0.5, 0.0, 0.5)
    np.testing.assert_allclose(margin(probs), [1 - (0.6 - 0.3), 1 - 0.0])
    np.testing.assert_allclose(least_confidence(probs), [0.4, 0.5])


def test_certain_one_hot_predictions_score_zero_everywhere():
    probs = np.zeros((5, 3, 4))
    probs[:, np.arange(3), [0, 3, 2]] = 1.0
    with np.errstate(all="raise"):
        for name, fn in ACQUISITION_FUNCTIONS.items():
            if name == "margin":
                np.testing.assert_allclose(fn(probs), 0.0, err_msg=name)  # 1 - (1 - 0)
            else:
                np.testing.assert_allclose(fn(probs), 0.0, atol=1e-12, err_msg=name)


def _probability_tensors():
    shape = st.tuples(st.integers(1, 6), st.integers(0, 8), st.integers(2, 5))
    return shape.flatmap(
        lambda s: arrays(np.float64, s, elements=st.floats(0.0, 1.0, allow_nan=False)).map(_to_simplex)
    )


def _to_simplex(raw):
    raw = raw + 1e-3
    return raw / raw.sum(axis=2, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(_probability_tensors())
def test_every_acquisition_function_is_finite_bounded_and_per_item(probs):
    t, n, c = probs.shape
    for name, fn in ACQUISITION_FUNCTIONS.items():
        values = fn(probs)
        assert values.shape == (n,), name
        assert np.isfinite(values).all(), name
        assert (values >= -1e-12).all(), name
    assert (predictive_entropy(probs) <= math.log(c) + 1e-9).all()
    # Mutual information never exceeds the total predictive entropy.
    assert (bald(probs) <= predictive_entropy(probs) + 1e-9).all()
    # Items are scored independently: scoring a subset gives the same values.
    if n > 1:
        for fn in ACQUISITION_FUNCTIONS.values():
            np.testing.assert_allclose(fn(probs[:, 1:]), fn(probs)[1:])


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.full((3, 2), 0.5), r"\(T, N, C\)"),
        (np.full((2, 3, 1), 1.0), "at least 2"),
        (np.full((2, 3, 2), np.nan), "not a probability"),
        (np.array([[[2.0, -1.0]]]), "not a probability"),
        (np.array([[[0.3, 0.3]]]), "sums to"),
        (np.zeros((0, 2, 2)), "T=0"),
    ],
)
def test_bad_probability_arrays_are_rejected_with_a_clear_error(probs, message):
    with pytest.raises(ValueError, match=message):
        predictive_entropy(probs)


def test_acquisition_functions_are_looked_up_by_config_name():
    assert get_acquisition_function("bald") is bald
    with pytest.raises(ValueError, match="choose one of"):
        get_acquisition_function("entropy")
