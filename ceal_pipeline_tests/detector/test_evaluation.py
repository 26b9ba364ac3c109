"""Specification of detector evaluation (BEV centre-distance mAP, nuScenes thresholds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ceal_pipeline.detector.bevfusion import Detections
from ceal_pipeline.detector.evaluation import (
    bev_range_of,
    detection_errors,
    evaluate_detector,
    evaluate_predictions,
    predict_frames,
)
from ceal_pipeline.frames.records import DETECTION_CLASSES


def _perfect(frames, shift_m: float = 0.0):
    detections = []
    for frame in frames:
        boxes = torch.as_tensor(np.asarray(frame.boxes), dtype=torch.float32).clone()
        boxes[:, 0] += shift_m
        detections.append(Detections(boxes=boxes, scores=torch.ones(len(boxes)),
                                     labels=torch.as_tensor(np.asarray(frame.labels))))
    return detections


def test_ground_truth_as_predictions_scores_map_one_for_every_class_and_threshold(frames):
    result = evaluate_predictions(_perfect(frames), frames, DETECTION_CLASSES)
    assert result["mAP"] == pytest.approx(1.0)
    assert set(result["per_threshold"]) == {"0.5m", "1m", "2m", "4m"}
    for name, ap in result["per_class"].items():
        assert ap == pytest.approx(1.0) or (math.isnan(ap) and result["num_ground_truth"][name] == 0)
    assert result["frames"] == len(frames)
    assert result["detections"] == sum(len(f.labels) for f in frames)


def test_centres_off_by_one_and_a_half_metres_match_only_at_the_2_and_4_metre_thresholds(frames):
    result = evaluate_predictions(_perfect(frames, shift_m=1.5), frames, DETECTION_CLASSES)
    assert result["per_threshold"]["0.5m"] == pytest.approx(0.0)
    assert result["per_threshold"]["1m"] == pytest.approx(0.0)
    assert result["per_threshold"]["2m"] == pytest.approx(1.0)
    assert result["per_threshold"]["4m"] == pytest.approx(1.0)
    assert result["mAP"] == pytest.approx(0.5)


def test_evaluation_needs_one_detection_set_per_frame(frames):
    with pytest.raises(ValueError, match="one per frame"):
        evaluate_predictions(_perfect(frames)[:-1], frames, DETECTION_CLASSES)


def test_evaluate_detector_runs_the_model_deterministically(frames, tiny_detector):
    first = evaluate_detector(tiny_detector, frames[:3], device="cpu")
    second = evaluate_detector(tiny_detector, frames[:3], device="cpu", batch_size=1)
    assert first == second
    assert 0.0 <= first["mAP"] <= 1.0


def test_objects_outside_the_detector_grid_are_neither_hits_nor_misses(frames):
    bev_range = (-20.0, -20.0, 20.0, 20.0)
    detections = _perfect(frames)
    for det in detections:  # the detector "sees" only its grid
        inside = (det.boxes[:, 0].abs() < 20) & (det.boxes[:, 1].abs() < 20)
        det.boxes, det.scores, det.labels = det.boxes[inside], det.scores[inside], det.labels[inside]
    unfiltered = evaluate_predictions(detections, frames, DETECTION_CLASSES)
    filtered = evaluate_predictions(detections, frames, DETECTION_CLASSES, bev_range=bev_range)
    assert unfiltered["mAP"] < 1.0
    assert filtered["mAP"] == pytest.approx(1.0)



def test_per_frame_errors_are_zero_for_ground_truth_and_count_each_box_once_when_shifted_past_the_radius(frames):
    perfect = detection_errors(_perfect(frames), frames, DETECTION_CLASSES, threshold_m=2.0)
    assert perfect.errors.tolist() == [0] * len(frames)
    shifted = detection_errors(_perfect(frames, shift_m=3.0), frames, DETECTION_CLASSES, threshold_m=2.0)
    counts = [len(f.labels) for f in frames]
    # Every box is missed and its shifted copy is a false box (no two objects 3 m apart here).
    assert shifted.missed.tolist() == counts and shifted.false.tolist() == counts


def test_predict_frames_gives_the_detections_evaluate_detector_scores(frames, tiny_detector):
    detections = predict_frames(tiny_detector, frames[:3], device="cpu", num_workers=0)
    assert len(detections) == 3
    expected = evaluate_predictions(detections, frames[:3], tiny_detector.class_names,
                                    bev_range=bev_range_of(tiny_detector))
    assert evaluate_detector(tiny_detector, frames[:3], device="cpu", num_workers=0) == expected
