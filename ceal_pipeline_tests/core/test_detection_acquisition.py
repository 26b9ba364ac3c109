"""Spec: detection acquisition functions turn one batch of MC-Dropout outputs into one value
per frame; the heatmap-aware ones score frames without detections from the heatmap."""

import math
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.detection_acquisition import (
    DETECTION_ACQUISITION_FUNCTIONS,
    DETECTION_AGGREGATIONS,
    DetectionAcquisitionName,
    DetectionAcquisitionSettings,
    DetectionMCOutputs,
    get_detection_acquisition_function,
    top_k_sum,
)
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline.core.localization import aggregate_per_frame, localization_entropy, minimum_localization_entropy

FLOOR = minimum_localization_entropy(1e-4)
H_03_PAIR = 2 * -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))  # two classes at p = 0.3: 1.2217 nats
LOCALIZATION_INFORMATION = 0.5 * math.log(3)  # x samples -0.01, +0.01 over a 1e-4 m^2 floor


def two_frames() -> DetectionMCOutputs:
    """Frame 0: one box whose 2 MC samples differ by 2 cm in x, its peak at cell (1, 1)
    with both classes at 0.3. Frame 1: no detection, class 0 at 0.5 in cell (0, 0)."""
    boxes = np.zeros((2, 1, 7))
    boxes[:, 0, 0] = [-0.01, 0.01]
    heatmap = np.zeros((1, 2, 2, 2, 2))  # (T_h, frames, classes, rows, columns)
    heatmap[0, 0, :, 1, 1] = 0.3
    heatmap[0, 1, 0, 0, 0] = 0.5
    return DetectionMCOutputs(box_samples=boxes, frame_index=np.array([0]), peak_cell=np.array([3]),
                              heatmap_probs=heatmap)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("localization_entropy", [FLOOR + LOCALIZATION_INFORMATION, FLOOR]),
        # The peak's class scores (0.3, 0.3) normalise to a coin flip: log 2 nats.
        ("localization_and_class_entropy", [FLOOR + LOCALIZATION_INFORMATION + math.log(2), FLOOR]),
        ("heatmap_entropy", [H_03_PAIR, math.log(2)]),
        ("localization_and_heatmap_entropy", [LOCALIZATION_INFORMATION + H_03_PAIR, math.log(2)]),
    ],
)
def test_each_detection_acquisition_function_matches_its_hand_computed_value(name, expected):
    scores = DETECTION_ACQUISITION_FUNCTIONS[name](two_frames(), DetectionAcquisitionSettings(heatmap_top_k=1))
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_heatmap_weight_and_top_k_enter_the_combination_as_documented():
    combined = get_detection_acquisition_function("localization_and_heatmap_entropy")
    weighted = combined(two_frames(), DetectionAcquisitionSettings(heatmap_top_k=1, heatmap_weight=2.0))
    np.testing.assert_allclose(weighted, [LOCALIZATION_INFORMATION + 2 * H_03_PAIR, 2 * math.log(2)], rtol=1e-12)
    # The default top-k (64) exceeds the 4 cells: the mean over the whole grid.
    default = combined(two_frames())
    np.testing.assert_allclose(default, [LOCALIZATION_INFORMATION + H_03_PAIR / 4, math.log(2) / 4], rtol=1e-12)


def test_the_default_function_is_the_aggregated_localization_entropy_bit_for_bit():
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(5, 9, 7))
    frame_index = np.array([0, 0, 2, 2, 2, 3, 3, 3, 3])
    outputs = DetectionMCOutputs(boxes, frame_index, np.zeros(9, dtype=int), rng.uniform(size=(1, 5, 3, 4, 4)))
    for how in ("mean", "max", "sum"):
        expected = aggregate_per_frame(localization_entropy(boxes), frame_index, 5, how=how, empty=FLOOR)
        scores = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](
            outputs, DetectionAcquisitionSettings(aggregate=how)
        )
        np.testing.assert_array_equal(scores, expected)


def test_only_the_heatmap_functions_score_frames_without_detections_from_the_heatmap():
    from_heatmap = {name for name, fn in DETECTION_ACQUISITION_FUNCTIONS.items() if fn.empty_frames_from_heatmap}
    assert from_heatmap == {"heatmap_entropy", "localization_and_heatmap_entropy", "localization_and_heatmap_ranks"}
    assert set(DETECTION_ACQUISITION_FUNCTIONS) == set(get_args(DetectionAcquisitionName))


@st.composite
def mc_outputs(draw):
    """A batch of up to 4 frames with up to 3 boxes each (some frames empty) and a 3 x 3 heatmap."""
    n_frames = draw(st.integers(1, 4))
    counts = draw(st.lists(st.integers(0, 3), min_size=n_frames, max_size=n_frames))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = sum(counts)
    return DetectionMCOutputs(
        box_samples=rng.normal(scale=draw(st.floats(0.001, 1.0)), size=(4, k, 7)),
        frame_index=np.repeat(np.arange(n_frames), counts),
        peak_cell=rng.integers(0, 9, size=k),
        heatmap_probs=rng.uniform(size=(1, n_frames, 2, 3, 3)) ** draw(st.floats(0.2, 5.0)),
    )


def frame_alone(outputs: DetectionMCOutputs, b: int) -> DetectionMCOutputs:
    own = outputs.frame_index == b
    return DetectionMCOutputs(outputs.box_samples[:, own], np.zeros(own.sum(), dtype=int), outputs.peak_cell[own],
                              outputs.heatmap_probs[:, b : b + 1])


@settings(max_examples=40, deadline=None)
@given(mc_outputs(), st.sampled_from(sorted(DETECTION_ACQUISITION_FUNCTIONS)), st.sampled_from(DETECTION_AGGREGATIONS))
def test_a_frame_has_the_same_terms_alone_or_in_a_batch_and_the_same_value_unless_ranked(outputs, name, how):
    fn, config = DETECTION_ACQUISITION_FUNCTIONS[name], DetectionAcquisitionSettings(aggregate=how, heatmap_top_k=4)
    together = fn.frame_terms(outputs, config)
    alone = [fn.frame_terms(frame_alone(outputs, b), config) for b in range(outputs.n_frames)]
    for term, values in together.items():
        np.testing.assert_allclose(values, np.concatenate([a[term] for a in alone]), rtol=1e-12, atol=1e-12)
    if not fn.combines_ranks:
        alone_values = np.concatenate([fn(frame_alone(outputs, b), config) for b in range(outputs.n_frames)])
        np.testing.assert_allclose(fn(outputs, config), alone_values, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(mc_outputs(), st.sampled_from(DETECTION_AGGREGATIONS), st.floats(0.0, 3.0))
def test_the_rank_combination_ranks_the_terms_of_the_sum_combination(outputs, how, w):
    config = DetectionAcquisitionSettings(aggregate=how, heatmap_top_k=4, heatmap_weight=w)
    ranked = DETECTION_ACQUISITION_FUNCTIONS["localization_and_heatmap_ranks"]
    terms = ranked.frame_terms(outputs, config)
    summed = DETECTION_ACQUISITION_FUNCTIONS["localization_and_heatmap_entropy"](outputs, config)
    np.testing.assert_allclose(terms["localization"] + w * terms["heatmap"], summed, rtol=1e-12, atol=1e-12)
    values = ranked(outputs, config)
    assert ((values >= -1e-12) & (values <= 1 + w + 1e-12)).all()
    np.testing.assert_allclose(values, rank_normalised_combination(terms, {"localization": 1.0, "heatmap": w}))


def test_ranks_let_a_small_heatmap_term_weigh_as_much_as_the_box_term():
    # Frame 0: an uncertain box, a confident heatmap; frame 1: no box, a hesitant heatmap.
    boxes = np.zeros((2, 1, 7))
    boxes[:, 0, 0] = [-0.5, 0.5]  # 1 m of MC spread: ~4 nats of localization information
    heatmap = np.full((1, 2, 2, 2, 2), 0.01)
    heatmap[0, 1] = 0.4
    outputs = DetectionMCOutputs(boxes, np.array([0]), np.array([0]), heatmap)
    settings_ = DetectionAcquisitionSettings(heatmap_top_k=4)
    summed = DETECTION_ACQUISITION_FUNCTIONS["localization_and_heatmap_entropy"](outputs, settings_)
    assert summed[0] > summed[1]  # nats: the box's information swamps the heatmap
    ranked = DETECTION_ACQUISITION_FUNCTIONS["localization_and_heatmap_ranks"]
    np.testing.assert_allclose(ranked(outputs, settings_), [1.0, 1.0])  # one term each: a tie
    heavier = ranked(outputs, DetectionAcquisitionSettings(heatmap_top_k=4, heatmap_weight=2.0))
    np.testing.assert_allclose(heavier, [1.0, 2.0])
    assert ranked.term_weights(settings_) == {"localization": 1.0, "heatmap": 1.0}


@settings(max_examples=40, deadline=None)
@given(mc_outputs(), st.floats(0.0, 3.0))
def test_the_combination_adds_non_negative_localization_information_to_the_weighted_heatmap_entropy(outputs, w):
    config = DetectionAcquisitionSettings(heatmap_weight=w)
    combined = DETECTION_ACQUISITION_FUNCTIONS["localization_and_heatmap_entropy"](outputs, config)
    heatmap = DETECTION_ACQUISITION_FUNCTIONS["heatmap_entropy"](outputs, config)
    assert (combined >= w * heatmap - 1e-12).all()
    empty = outputs.n_detections == 0
    np.testing.assert_allclose(combined[empty], w * heatmap[empty], rtol=1e-12)


@pytest.mark.parametrize("name", ["heatmap_entropy", "localization_and_heatmap_entropy",
                                  "localization_and_heatmap_ranks"])
def test_an_empty_frame_with_a_hesitant_heatmap_outranks_one_with_a_confident_heatmap(name):
    heatmap = np.zeros((1, 2, 3, 5, 5))
    heatmap[0, 0] = 0.01  # confident background
    heatmap[0, 1, :, 2:4, 2:4] = 0.45  # an object the detector half-sees but does not report
    outputs = DetectionMCOutputs(np.zeros((3, 0, 7)), np.zeros(0, dtype=int), np.zeros(0, dtype=int), heatmap)
    confident, hesitant = DETECTION_ACQUISITION_FUNCTIONS[name](outputs)
    assert hesitant > confident > 0.0


def test_unknown_names_bad_settings_and_bad_outputs_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="choose one of.*heatmap_entropy"):
        get_detection_acquisition_function("entropy")
    with pytest.raises(ValueError, match="scores frames without detections from the heatmap"):
        DETECTION_ACQUISITION_FUNCTIONS["heatmap_entropy"](two_frames(), DetectionAcquisitionSettings(empty=0.0))
    with pytest.raises(ValueError, match="aggregation"):
        DetectionAcquisitionSettings(aggregate="median")
    with pytest.raises(ValueError, match="heatmap_weight"):
        DetectionAcquisitionSettings(heatmap_weight=-1.0)
    with pytest.raises(ValueError, match=r"frame_index 2, outside \[0, 2\)"):
        DetectionMCOutputs(np.zeros((2, 1, 7)), np.array([2]), np.array([0]), np.zeros((1, 2, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"peak_cell 4, outside \[0, 4\)"):
        DetectionMCOutputs(np.zeros((2, 1, 7)), np.array([0]), np.array([4]), np.zeros((1, 2, 1, 2, 2)))


def crowded_and_lonely() -> DetectionMCOutputs:
    """Frame 0: one box, 2 MC samples 2 cm apart in x, confidence 0.5. Frame 1: three
    boxes each 1 cm apart in x (so each less uncertain), confidences 0.9, 0.8, 0.7."""
    boxes = np.zeros((2, 4, 7))
    boxes[:, 0, 0] = [-0.01, 0.01]
    for k in (1, 2, 3):
        boxes[:, k, 0] = [-0.005, 0.005]
    heatmap = np.zeros((1, 2, 1, 2, 2))
    heatmap[0, 0, 0, 0, 0] = 0.5
    heatmap[0, 1, 0, 0, :] = [0.9, 0.8]
    heatmap[0, 1, 0, 1, 0] = 0.7
    return DetectionMCOutputs(box_samples=boxes, frame_index=np.array([0, 1, 1, 1]),
                              peak_cell=np.array([0, 0, 1, 2]), heatmap_probs=heatmap)


def test_top_k_and_confidence_sums_let_three_uncertain_objects_outrank_one_more_uncertain_object():
    outputs = crowded_and_lonely()
    lonely = 0.5 * math.log(3)          # 2 cm spread over the 1e-4 m^2 floor, as above
    crowded = 0.5 * math.log(1.5)       # 1 cm spread: 0.5 log(1 + 0.005^2 * 2 / 1e-4)
    mean = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](outputs, DetectionAcquisitionSettings())
    assert mean[0] > mean[1]  # the mean favours the one-detection frame
    top2 = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](
        outputs, DetectionAcquisitionSettings(aggregate="top_k_sum", top_objects=2))
    np.testing.assert_allclose(top2, [FLOOR + lonely, FLOOR + 2 * crowded], rtol=1e-12)
    top3 = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](
        outputs, DetectionAcquisitionSettings(aggregate="top_k_sum", top_objects=3))
    np.testing.assert_allclose(top3, [FLOOR + lonely, FLOOR + 3 * crowded], rtol=1e-12)
    assert top3[1] > top3[0]
    confidence = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](
        outputs, DetectionAcquisitionSettings(aggregate="confidence_sum"))
    np.testing.assert_allclose(confidence, [FLOOR + 0.5 * lonely, FLOOR + (0.9 + 0.8 + 0.7) * crowded], rtol=1e-12)
    assert confidence[1] > confidence[0]


def test_summed_aggregations_score_an_empty_frame_at_the_empty_value_and_never_below_it():
    outputs = two_frames()
    for how in ("top_k_sum", "confidence_sum"):
        scores = DETECTION_ACQUISITION_FUNCTIONS["localization_entropy"](
            outputs, DetectionAcquisitionSettings(aggregate=how))
        assert scores[1] == pytest.approx(FLOOR)
        assert scores[0] > FLOOR


def test_top_k_sum_adds_the_k_largest_values_of_each_frame():
    values = np.array([1.0, 5.0, 3.0, 2.0, 7.0])
    frames = np.array([0, 0, 0, 2, 2])
    np.testing.assert_allclose(top_k_sum(values, frames, 4, 2), [8.0, 0.0, 9.0, 0.0])
