"""Spec: nuScenes-style BEV centre-distance mAP (thresholds 0.5/1/2/4 m, min recall/precision 0.1)."""

import numpy as np
import pytest

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.detection_metrics import average_precision, detection_map

CLASSES = ("car", "pedestrian")


def _box(x, y):
    return [x, y, 0.0, 4.0, 1.8, 1.5, 0.0]


def _gt_frames():
    gt_boxes = [Boxes([_box(0, 0), _box(10, 5)]), Boxes([_box(-20, 3)])]
    gt_labels = [np.array([0, 1]), np.array([0])]
    return gt_boxes, gt_labels


def test_perfect_detections_score_one():
    gt_boxes, gt_labels = _gt_frames()
    result = detection_map(gt_boxes, [np.array([0.9, 0.8]), np.array([0.7])], gt_labels, gt_boxes, gt_labels,
                           class_names=CLASSES)
    assert result.mean_ap == pytest.approx(1.0)
    assert result.per_class == pytest.approx({"car": 1.0, "pedestrian": 1.0})
    assert result.per_threshold == pytest.approx({0.5: 1.0, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0})


def test_detection_1_5_m_off_counts_only_at_2_and_4_m():
    gt = [Boxes([_box(0, 0)])]
    labels = [np.array([0])]
    pred = [Boxes([_box(1.5, 0)])]
    result = detection_map(pred, [np.array([0.9])], labels, gt, labels, class_names=CLASSES)
    assert result.per_threshold == pytest.approx({0.5: 0.0, 1.0: 0.0, 2.0: 1.0, 4.0: 1.0})
    assert result.mean_ap == pytest.approx(0.5)
    assert np.isnan(result.per_class["pedestrian"])  # no ground truth: left out of the means


def test_false_positives_ranked_above_true_ones_lower_precision():
    gt = [Boxes([_box(0, 0), _box(30, 0)])]
    labels = [np.array([0, 0])]
    pred = [Boxes([_box(0, 0), _box(30, 0), _box(60, 0)])]
    pred_labels = [np.array([0, 0, 0])]
    low_fp = detection_map(pred, [np.array([0.9, 0.8, 0.1])], pred_labels, gt, labels, class_names=CLASSES)
    high_fp = detection_map(pred, [np.array([0.8, 0.7, 0.9])], pred_labels, gt, labels, class_names=CLASSES)
    assert low_fp.mean_ap == pytest.approx(1.0)  # the FP comes after full recall
    # FP first: precision 0, then 1/2 at recall 0.5, 2/3 at recall 1. Interpolated
    # precision rises linearly from 1/2 to 2/3 between recall 0.5 and 1.
    recall = np.linspace(0, 1, 101)[11:]
    precision = np.interp(recall, [0.0, 0.5, 1.0], [0.0, 0.5, 2 / 3])
    expected = np.mean(np.clip(precision - 0.1, 0, None)) / 0.9
    assert high_fp.mean_ap == pytest.approx(expected)
    assert high_fp.mean_ap < low_fp.mean_ap


def test_each_ground_truth_is_matched_at_most_once_and_classes_do_not_mix():
    gt = [Boxes([_box(0, 0)])]
    labels = [np.array([0])]
    pred = [Boxes([_box(0.1, 0), _box(0.2, 0), _box(0, 0)])]
    # Duplicate detection: the second one is a false positive.
    dup = detection_map([Boxes(pred[0].values[:2])], [np.array([0.9, 0.8])], [np.array([0, 0])], gt, labels,
                        class_names=CLASSES)
    assert dup.mean_ap == pytest.approx(1.0)  # FP after full recall costs nothing
    wrong_class = detection_map([Boxes(pred[0].values[2:])], [np.array([0.9])], [np.array([1])], gt, labels, class_names=CLASSES)
    assert wrong_class.per_class["car"] == 0.0


def test_missed_ground_truth_caps_recall():
    gt = [Boxes([_box(0, 0), _box(50, 50)])]
    labels = [np.array([0, 0])]
    result = detection_map([Boxes([_box(0, 0)])], [np.array([0.9])], [np.array([0])], gt, labels,
                           class_names=CLASSES)
    # Precision 1 up to recall 0.5, 0 beyond: recall points 0.11..0.50 of 0.11..1.00 count.
    assert result.mean_ap == pytest.approx(40 / 90)


def test_average_precision_ignores_operating_points_below_min_recall_and_precision():
    assert average_precision(np.array([True]), 20) == 0.0  # recall 0.05 < min_recall
    assert average_precision(np.array([], dtype=bool), 3) == 0.0
    with pytest.raises(ValueError, match="ground truth"):
        average_precision(np.array([True]), 0)


def test_inputs_are_validated_per_frame():
    gt_boxes, gt_labels = _gt_frames()
    with pytest.raises(ValueError, match="one entry per frame"):
        detection_map(gt_boxes[:1], [np.array([0.9, 0.8])], gt_labels[:1], gt_boxes, gt_labels, class_names=CLASSES)
    with pytest.raises(ValueError, match="frame 1: .*label 5"):
        detection_map(gt_boxes, [np.array([0.9, 0.8]), np.array([0.7])], [gt_labels[0], np.array([5])],
                      gt_boxes, gt_labels, class_names=CLASSES)
    with pytest.raises(ValueError, match="frame 0: 2 predicted boxes but scores"):
        detection_map(gt_boxes, [np.array([0.9]), np.array([0.7])], gt_labels, gt_boxes, gt_labels,
                      class_names=CLASSES)
    with pytest.raises(TypeError, match="frame 0: predicted boxes must be core.boxes.Boxes.*Boxes\\(array\\)"):
        detection_map([b.values for b in gt_boxes], [np.array([0.9, 0.8]), np.array([0.7])], gt_labels, gt_boxes,
                      gt_labels, class_names=CLASSES)


def test_unclipped_ap_counts_recall_below_ten_percent_that_the_clipped_ap_ignores():
    # One of 20 cars found, nothing false: recall 0.05, precision 1.
    gt = [Boxes(np.array([_box(5.0 * i, 0) for i in range(20)]))]
    labels = [np.zeros(20, dtype=int)]
    result = detection_map([Boxes(np.array([_box(0, 0)]))], [np.array([0.9])], [np.array([0])], gt, labels,
                           class_names=CLASSES)
    assert result.mean_ap == 0.0
    # Precision 1 at recall points 0.01..0.05, 0 beyond: 5 of the 100 points above 0.
    assert result.mean_ap_unclipped == pytest.approx(5 / 100)
    assert result.per_class_unclipped["car"] == pytest.approx(5 / 100)
    assert np.isnan(result.per_class_unclipped["pedestrian"])


def test_unclipped_ap_keeps_low_precision_that_clipping_subtracts():
    # 1 true positive ranked after 7 false ones: precision 1/8 at full recall.
    gt = [Boxes(np.array([_box(0, 0)]))]
    labels = [np.array([0])]
    pred = Boxes(np.array([_box(40.0 + 3 * i, 0) for i in range(7)] + [_box(0, 0)]))
    result = detection_map([pred], [np.linspace(0.9, 0.2, 8)], [np.zeros(8, dtype=int)], gt, labels,
                           class_names=CLASSES)
    # Recall jumps from 0 (precision 0) to 1 (precision 1/8): precision r / 8 at recall r.
    recall = np.linspace(0, 1, 101)
    clipped = np.mean(np.clip(recall[11:] / 8 - 0.1, 0, None)) / 0.9
    assert result.mean_ap == pytest.approx(clipped)
    assert result.mean_ap_unclipped == pytest.approx(np.mean(recall[1:] / 8))
    assert result.mean_ap_unclipped > 5 * result.mean_ap


def test_summary_reports_car_ap_and_non_car_map_apart_clipped_and_unclipped():
    classes = ("car", "truck", "pedestrian")
    gt = [Boxes(np.array([_box(0, 0), _box(10, 0), _box(20, 0)]))]
    labels = [np.array([0, 1, 2])]
    # Car and truck found exactly, pedestrian missed.
    result = detection_map([Boxes(gt[0].values[:2])], [np.array([0.9, 0.8])], [np.array([0, 1])], gt, labels,
                           class_names=classes).to_dict()
    assert result["car_AP"] == pytest.approx(1.0)
    assert result["non_car_mAP"] == pytest.approx(0.5)  # truck 1, pedestrian 0
    assert result["mAP"] == pytest.approx(2 / 3)
    assert result["car_AP_unclipped"] == pytest.approx(1.0)
    assert result["non_car_mAP_unclipped"] == pytest.approx(0.5)
    assert result["mAP_unclipped"] == pytest.approx(2 / 3)
