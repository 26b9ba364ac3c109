"""Specification of the detection benchmark's results: the append-only store, mean ± std
over seeds, sub-population shares, pruning's effect, the score-error correlation and
the report (hand-made run records; nothing is trained)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.detection_metrics import frame_detection_errors
from ceal_pipeline.validation.detection.data import (
    SUBPOPULATIONS,
    add_counts,
    subpopulation_counts,
    subpopulation_shares,
)
from ceal_pipeline.validation.detection.report import (
    map_plot_png,
    paired_markdown,
    per_class_markdown,
    pruning_markdown,
    results_table_markdown,
    score_error_markdown,
    subpopulations_markdown,
)
from ceal_pipeline.validation.detection.results import detection_summary_json, summarise_detection
from ceal_pipeline.validation.detection.score_error import spearman
from ceal_pipeline.validation.results import BenchmarkResults

CONDITIONS = {"a": ("night",), "b": ("night", "rain"), "c": (), "d": ("far",), "e": ("rare",), "f": ()}


def _run(strategy: str, seed: int, final_map: float, forward_passes: int, pruned: int = 0) -> dict:
    return {
        "dataset": "detection", "protocol_key": "k", "strategy": strategy, "run_seed": seed,
        "map_per_round": [0.1, final_map], "labeled_per_round": [10, 14],
        "map_unclipped_per_round": [0.15, final_map + 0.05], "boxes_per_round": [70, 98],
        "cost_per_round": [17.0, 23.8], "car_ap_per_round": [0.3, final_map + 0.2], "non_car_map_per_round": [0.0, None],
        "per_class_ap_per_round": [{"car": 0.2, "truck": None}, {"car": final_map, "truck": None}],
        "bought_per_round": [subpopulation_counts(["a", "b", "c", "d"], CONDITIONS)],
        "pool_subpopulations": subpopulation_counts(list(CONDITIONS), CONDITIONS),
        "pruned_per_round": [pruned], "frames_pruned": pruned, "forward_passes": forward_passes,
        "frames_scored": forward_passes // 10, "acquisition_s": 1.0, "training_s": 2.0, "evaluation_s": [0.5, 0.5],
        "score_error_spearman": {"localization_entropy": 0.1 + 0.1 * seed, "heatmap_entropy": None},
        "score_missed_spearman": {"localization_entropy": 0.2, "heatmap_entropy": -0.1},
    }


def test_subpopulation_shares_count_overlapping_conditions_and_normal_plus_any_condition_is_one():
    counts = subpopulation_counts(list(CONDITIONS), CONDITIONS)
    assert counts == {"night": 2, "rain": 1, "far": 1, "rare": 1, "normal": 2, "frames": 6}
    shares = subpopulation_shares(counts)
    assert set(shares) == set(SUBPOPULATIONS)
    any_condition = sum(1 for c in CONDITIONS.values() if c) / len(CONDITIONS)
    assert shares["normal"] + any_condition == pytest.approx(1.0)
    assert shares["night"] == pytest.approx(2 / 6)
    assert add_counts([counts, counts])["frames"] == 12
    assert subpopulation_shares(subpopulation_counts([], CONDITIONS)) == dict.fromkeys(SUBPOPULATIONS, 0.0)


def test_runs_append_to_the_store_and_summarise_as_mean_and_std_over_seeds(tmp_path):
    store = BenchmarkResults(tmp_path)
    for run in (_run("random", 0, 0.3, 0), _run("random", 1, 0.5, 0), _run("localization_entropy", 0, 0.4, 1000),
                _run("localization_entropy", 1, 0.4, 1000)):
        store.append(run)
    store.append(_run("random", 1, 0.5, 0))  # a rerun of a stored seed counts once
    summaries = summarise_detection(store.runs("detection", "k"))
    random = summaries["random"]
    assert random.seeds == [0, 1] and random.final_map == pytest.approx(0.4)
    assert random.final_map_std == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert random.per_class_ap == {"car": pytest.approx((0.4, np.std([0.3, 0.5], ddof=1))), "truck": None}
    assert random.bought_shares["night"] == pytest.approx(0.5) and random.evaluation_s == pytest.approx(1.0)
    with pytest.raises(ValueError, match="map_per_round"):
        store.append({"dataset": "detection", "protocol_key": "k", "strategy": "random", "run_seed": 0})


def test_the_json_line_has_the_documented_shape():
    runs = [_run("random", 0, 0.3, 0), _run("localization_entropy", 0, 0.4, 1000),
            _run("ceal_localization_entropy_10pct", 0, 0.42, 400),
            _run("ceal_localization_entropy_10pct_pruned", 0, 0.41, 300, pruned=7),
            _run("random", 1, 0.5, 0), _run("localization_entropy", 1, 0.4, 1000),
            _run("ceal_localization_entropy_10pct", 1, 0.42, 400),
            _run("ceal_localization_entropy_10pct_pruned", 1, 0.41, 300, pruned=7)]
    line = json.loads(json.dumps(detection_summary_json(summarise_detection(runs), runs, preset="quick")))
    assert line["dataset"] == "detection" and line["preset"] == "quick"
    for result in line["strategies"].values():
        assert {"final_map", "map_per_round", "seeds", "forward_passes", "acquisition_s", "training_s",
                "per_class_ap", "bought_shares", "compute_vs_full_pool", "frames_pruned"} <= set(result)
        assert result["final_map"] == result["map_per_round"][-1] and result["seeds"] == [0, 1]
    assert line["strategies"]["ceal_localization_entropy_10pct"]["compute_vs_full_pool"] == 0.4
    # The headline, paired with random by seed: final mAP 0.42 vs 0.3 and 0.5 -> +0.12, -0.08.
    ceal = line["strategies"]["ceal_localization_entropy_10pct"]
    assert ceal["paired_vs_random"]["metric"] == "alc" and ceal["paired_vs_random"]["seeds"] == [0, 1]
    assert ceal["paired_vs_random"]["final_map"]["mean"] == pytest.approx(0.02)
    low, high = ceal["paired_vs_random"]["final_map"]["ci95"]
    assert low < 0.02 < high and high - low == pytest.approx(2 * 12.7062 * 0.1, rel=1e-3)  # t_{.975,1} s / sqrt(2)
    # ALC of [0.1, m] over 10..14 labeled frames is (0.1 + m) / 2.
    assert ceal["alc"] == pytest.approx((0.1 + 0.42) / 2)
    assert ceal["paired_vs_random"]["mean"] == pytest.approx(0.01)
    # mAP per unit of money: (0.42 - 0.1) points over the 23.8 - 17.0 spent after round 0.
    assert ceal["final_car_ap"] == pytest.approx(0.62) and ceal["final_non_car_map"] is None
    assert ceal["final_cost"] == 23.8 and ceal["map_gain_per_cost"] == pytest.approx(0.32 / 6.8, abs=1e-6)
    assert line["strategies"]["random"]["compute_vs_full_pool"] is None
    # One figure per function, averaged over seeds; a function undefined on every seed is None.
    assert line["score_error_spearman"] == {"localization_entropy": 0.15, "heatmap_entropy": None}
    assert line["pool_shares"]["normal"] == pytest.approx(2 / 6, abs=1e-4)
    assert line["pruning"]["ceal_localization_entropy_10pct_pruned"] == {
        "compared_with": "ceal_localization_entropy_10pct", "frames_pruned": 7.0, "forward_passes_saved": 100.0,
        "map_cost": 0.01}


def test_the_report_renders_every_table_and_the_map_plot():
    runs = [_run("random", 0, 0.3, 0), _run("ceal_localization_entropy_10pct", 0, 0.42, 400),
            _run("ceal_localization_entropy_10pct_pruned", 0, 0.41, 300, pruned=7), _run("localization_entropy", 0, 0.4, 1000)]
    summaries = summarise_detection(runs)
    assert "| ceal_localization_entropy_10pct | 1 | 42.00 ± 0.00 |" in results_table_markdown(summaries)
    assert "| random | 30.00±0.00 | - |" in per_class_markdown(summaries)
    assert "| *unlabeled pool* | 33.3 | 16.7 | 16.7 | 16.7 | 33.3 |" in subpopulations_markdown(summaries, runs)
    assert "| localization_entropy | +0.100 ± 0.000 (n=1) | +0.200 ± 0.000 (n=1) |" in score_error_markdown(runs)
    assert "| 7.0 | 100 | +1.00 |" in pruning_markdown(summaries)
    assert map_plot_png(summaries, "test").startswith(b"\x89PNG")
    # One seed: paired differences without an interval; ALC 26 % vs random's 20 %, final +12 points,
    # random's final 30 % reached at 10 + 4 * (0.3 - 0.1) / (0.42 - 0.1) = 12.5 of random's 14 frames.
    assert "| ceal_localization_entropy_10pct | 26.00 | +6.00 | +6.00 | +6.00 | +12.00 | +12.00 | 89 % (1/1 seeds) |" \
        in paired_markdown(runs)


def test_spearman_is_a_rank_correlation_and_undefined_for_constant_values():
    errors = np.array([0, 1, 2, 5, 9])
    assert spearman(np.array([0.1, 0.2, 0.3, 0.4, 10.0]), errors) == pytest.approx(1.0)
    assert spearman(-errors.astype(float), errors) == pytest.approx(-1.0)
    assert spearman(np.ones(5), errors) is None and spearman(np.arange(2.0), np.arange(2.0)) is None


def test_frame_errors_count_missed_and_false_boxes_at_the_match_radius_for_confident_predictions():
    gt = [np.array([[0, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0]]), np.zeros((0, 7))]
    gt_labels = [np.array([0, 1]), np.zeros(0, int)]
    # Frame 0: a car 1 m off (hit at 2 m), a truck predicted as a car (false + missed truck),
    # a confident far-off car (false) and an unconfident one (ignored). Frame 1: one false box.
    pred = [np.array([[1, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0], [30, 0, 0, 4, 2, 1.5, 0],
                      [50, 0, 0, 4, 2, 1.5, 0]]), np.array([[5, 5, 0, 4, 2, 1.5, 0]])]
    scores = [np.array([0.9, 0.8, 0.5, 0.1]), np.array([0.7])]
    labels = [np.array([0, 0, 0, 0]), np.array([2])]
    pred, gt = [Boxes(b) for b in pred], [Boxes(b) for b in gt]
    errors = frame_detection_errors(pred, scores, labels, gt, gt_labels, n_classes=4, threshold_m=2.0,
                                    min_confidence=0.3)
    np.testing.assert_array_equal(errors.missed, [1, 0])
    np.testing.assert_array_equal(errors.false, [2, 1])
    np.testing.assert_array_equal(errors.errors, [3, 1])
    tight = frame_detection_errors(pred, scores, labels, gt, gt_labels, n_classes=4, threshold_m=0.5)
    np.testing.assert_array_equal(tight.missed, [2, 0])
