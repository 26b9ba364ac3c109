"""Specification of why a frame was bought: the explanation of its detected objects' MC statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.frame_explanation import (
    TOP_OBJECTS,
    FrameExplanation,
    FrameObjects,
    UncertainObject,
    explain_frame,
)
from ceal_pipeline.core.localization import box_mean_and_std

CLASSES = ("car", "truck", "pedestrian", "cyclist")


def hand_built_objects() -> FrameObjects:
    """Four objects: two cars, a pedestrian, a cyclist; the pedestrian is the most uncertain."""
    boxes = np.array([
        [10.0, 2.0, -1.0, 4.2, 1.8, 1.6, 0.0],
        [20.0, -3.0, -1.0, 4.0, 1.7, 1.5, 0.5],
        [8.0, 6.0, -1.0, 0.8, 0.8, 1.8, 1.0],
        [15.0, 9.0, -1.0, 1.8, 0.7, 1.7, -1.0],
    ])
    box_std = np.array([
        [0.1, 0.1, 0.05, 0.1, 0.05, 0.05, 0.02],
        [0.3, 0.4, 0.10, 0.2, 0.10, 0.10, 0.10],
        [1.2, 0.9, 0.20, 0.3, 0.20, 0.10, 0.80],
        [0.2, 0.2, 0.10, 0.1, 0.10, 0.10, 0.05],
    ])
    return FrameObjects(
        boxes=Boxes(boxes),
        box_std=box_std,
        labels=np.array([0, 0, 2, 3]),
        confidences=np.array([0.9, 0.6, 0.3, 0.5]),
        localization_entropy=np.array([-18.0, -12.0, -6.5, -15.0]),
    )


def no_objects() -> FrameObjects:
    return FrameObjects(Boxes(np.zeros((0, 7))), np.zeros((0, 7)), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))


def test_explanation_counts_detections_per_class_and_keeps_the_three_most_uncertain_objects():
    explanation = explain_frame(hand_built_objects(), CLASSES, acquisition_fn="localization_entropy",
                                aggregate="mean", at_empty_floor=False)

    assert explanation.n_detections == 4
    assert dict(explanation.class_counts) == {"car": 2, "pedestrian": 1, "cyclist": 1}
    assert explanation.aggregate == "mean" and explanation.acquisition_fn == "localization_entropy"
    assert not explanation.at_empty_floor
    assert len(explanation.most_uncertain) == TOP_OBJECTS == 3
    assert [o.class_name for o in explanation.most_uncertain] == ["pedestrian", "car", "cyclist"]
    assert [o.localization_entropy for o in explanation.most_uncertain] == [-6.5, -12.0, -15.0]
    top = explanation.most_uncertain[0]
    assert top.box == (8.0, 6.0, -1.0, 0.8, 0.8, 1.8, 1.0) and top.confidence == 0.3
    assert top.centre_std_m == pytest.approx(np.sqrt(1.2**2 + 0.9**2 + 0.2**2))
    assert top.size_std_m == pytest.approx(np.sqrt(0.3**2 + 0.2**2 + 0.1**2))
    assert top.yaw_std_rad == pytest.approx(0.8)


def test_a_frame_without_detections_is_flagged_at_the_no_detection_floor():
    explanation = explain_frame(no_objects(), CLASSES, acquisition_fn="localization_entropy", aggregate="max",
                                at_empty_floor=True)
    assert explanation.at_empty_floor
    assert explanation.n_detections == 0 and dict(explanation.class_counts) == {}
    assert explanation.most_uncertain == ()


def test_a_frame_without_detections_scored_from_the_heatmap_is_not_at_the_floor():
    explanation = explain_frame(no_objects(), CLASSES, acquisition_fn="heatmap_entropy", aggregate="mean",
                                at_empty_floor=False)
    assert not explanation.at_empty_floor and explanation.n_detections == 0


def test_a_frame_with_detections_cannot_be_flagged_at_the_floor():
    with pytest.raises(ValueError, match="4 detections cannot be scored at the no-detection floor"):
        explain_frame(hand_built_objects(), CLASSES, acquisition_fn="localization_entropy", aggregate="mean",
                      at_empty_floor=True)


def test_equal_entropies_keep_detection_order():
    objects = hand_built_objects()
    tied = FrameObjects(objects.boxes, objects.box_std, objects.labels, objects.confidences, np.full(4, -10.0))
    explanation = explain_frame(tied, CLASSES, acquisition_fn="localization_entropy", aggregate="sum",
                                at_empty_floor=False, top=4)
    assert [o.box[0] for o in explanation.most_uncertain] == [10.0, 20.0, 8.0, 15.0]


def test_bad_inputs_are_rejected_naming_the_problem():
    objects = hand_built_objects()
    with pytest.raises(ValueError, match="label 3 is not an index"):
        explain_frame(objects, CLASSES[:3], acquisition_fn="localization_entropy", aggregate="mean",
                      at_empty_floor=False)
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        explain_frame(objects, CLASSES, acquisition_fn="localization_entropy", aggregate="median",
                      at_empty_floor=False)
    with pytest.raises(ValueError, match=r"box_std must have shape \(4, 7\)"):
        FrameObjects(objects.boxes, objects.box_std[:3], objects.labels, objects.confidences,
                     objects.localization_entropy)


def test_an_explanation_survives_its_record_layout():
    explanation = explain_frame(hand_built_objects(), CLASSES, acquisition_fn="localization_entropy",
                                aggregate="mean", at_empty_floor=False)
    record = explanation.to_record()
    assert record["most_uncertain"][0]["class_name"] == "pedestrian"
    assert set(record["most_uncertain"][0]) == {
        "class_name", "x", "y", "z", "l", "w", "h", "yaw", "std_x", "std_y", "std_z", "std_l", "std_w", "std_h",
        "std_yaw", "confidence", "localization_entropy",
    }
    assert FrameExplanation.from_record(record) == explanation
    # Parquet maps read back as (key, value) pairs
    as_pairs = {**record, "class_counts": list(record["class_counts"].items())}
    assert FrameExplanation.from_record(as_pairs) == explanation
    with pytest.raises(ValueError, match="not an uncertain-object record"):
        UncertainObject.from_record({"class_name": "car"})


def test_yaw_spread_is_circular_so_samples_either_side_of_pi_are_close():
    samples = np.zeros((4, 1, 7))
    samples[:, 0, :3] = [[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    samples[:, 0, 6] = [np.pi - 0.05, -np.pi + 0.05, np.pi - 0.05, -np.pi + 0.05]
    mean, std = box_mean_and_std(samples)
    assert mean.values[0, 0] == pytest.approx(2.0) and std[0, 0] == pytest.approx(1.0)
    assert abs(abs(mean.values[0, 6]) - np.pi) < 1e-9
    assert std[0, 6] == pytest.approx(0.05, rel=1e-3)  # a plain std would say ~pi


@settings(max_examples=50, deadline=None)
@given(spread=st.floats(1e-4, 0.3), centre=st.floats(-3.0, 3.0), seed=st.integers(0, 2**32 - 1))
def test_small_circular_yaw_spread_matches_the_linear_standard_deviation(spread, centre, seed):
    yaw = centre + spread * np.random.default_rng(seed).standard_normal(64)
    samples = np.zeros((64, 1, 7))
    samples[:, 0, 6] = np.angle(np.exp(1j * yaw))  # wrapped to (-pi, pi]
    _, std = box_mean_and_std(samples)
    assert std[0, 6] == pytest.approx(np.std(yaw), rel=0.05)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 12), top=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_any_explanation_counts_every_detection_once_and_orders_its_objects_by_entropy(n, top, seed):
    rng = np.random.default_rng(seed)
    objects = FrameObjects(boxes=Boxes(rng.normal(size=(n, 7))), box_std=rng.uniform(0, 1, (n, 7)),
                           labels=rng.integers(0, len(CLASSES), n), confidences=rng.uniform(0, 1, n),
                           localization_entropy=rng.choice([-20.0, -15.0, -10.0], n))
    explanation = explain_frame(objects, CLASSES, acquisition_fn="localization_entropy", aggregate="sum",
                                at_empty_floor=False, top=top)
    assert sum(explanation.class_counts.values()) == explanation.n_detections == n
    assert all(count > 0 for count in explanation.class_counts.values())
    kept = [o.localization_entropy for o in explanation.most_uncertain]
    assert len(kept) == min(top, n) and kept == sorted(kept, reverse=True)
    assert kept == sorted(objects.localization_entropy, reverse=True)[: min(top, n)]
