"""Specification of the detection benchmark's headline statistics: the area under the
learning curve, paired differences to random with a 95 % t-interval, labels to parity and
the comparison at equal numbers of boxes (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.validation.detection.paired import (
    area_under_curve,
    curve_on_common_axis,
    labels_to_parity,
    paired_difference,
    t_interval_95,
)
from ceal_pipeline.validation.detection.results import paired_summary


def test_the_area_under_a_curve_is_its_mean_over_the_axis_range():
    assert area_under_curve([40, 60, 80], [0.1, 0.2, 0.3]) == pytest.approx(0.2)
    # Uneven spacing weighs each segment by its width: (0.1+0.3)/2*20 + (0.3+0.3)/2*60, over 80.
    assert area_under_curve([0, 20, 80], [0.1, 0.3, 0.3]) == pytest.approx((4 + 18) / 80)
    assert area_under_curve([5], [0.4]) == 0.4
    with pytest.raises(ValueError, match="must not decrease"):
        area_under_curve([2, 1], [0.0, 0.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=2, max_size=8), st.floats(-1, 1))
def test_a_constant_shift_of_a_curve_shifts_its_area_by_the_same_amount(values, shift):
    axis = np.cumsum(np.arange(1, len(values) + 1))
    assert area_under_curve(axis, np.asarray(values) + shift) == pytest.approx(
        area_under_curve(axis, values) + shift, abs=1e-9)


def test_the_paired_interval_is_the_student_t_interval_of_the_per_seed_differences():
    strategy = {0: 0.30, 1: 0.25, 2: 0.40}
    random = {0: 0.28, 1: 0.20, 2: 0.36, 3: 0.9}  # seed 3 has no partner: left out
    result = paired_difference(strategy, random)
    d = np.array([0.02, 0.05, 0.04])
    half = 4.302652729911275 * d.std(ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    assert result["seeds"] == [0, 1, 2] and result["mean"] == pytest.approx(d.mean())
    assert result["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert t_interval_95([0.1]) == (0.1, None)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({5: 0.1}, {6: 0.1})


def test_pairing_removes_the_seed_to_seed_spread_that_hides_a_constant_edge():
    rng = np.random.default_rng(0)
    seed_level = rng.normal(0.15, 0.05, size=5)  # seeds differ a lot ...
    random = dict(enumerate(seed_level))
    better = {s: v + 0.01 for s, v in random.items()}  # ... the strategy is always 1 point better
    result = paired_difference(better, random)
    assert result["mean"] == pytest.approx(0.01) and result["ci95"][0] > 0


def test_labels_to_parity_interpolates_where_the_curve_first_reaches_the_target():
    assert labels_to_parity([40, 60, 80], [0.10, 0.20, 0.30], 0.25) == pytest.approx(70.0)
    assert labels_to_parity([40, 60, 80], [0.30, 0.20, 0.40], 0.25) == 40.0
    assert labels_to_parity([40, 60, 80], [0.10, 0.20, 0.24], 0.25) is None


def test_a_curve_is_read_on_a_common_axis_only_within_its_range():
    np.testing.assert_allclose(curve_on_common_axis([0, 10], [0.0, 1.0], [2.5, 10]), [0.25, 1.0])
    with pytest.raises(ValueError, match="outside the curve's range"):
        curve_on_common_axis([0, 10], [0.0, 1.0], [11])


def _run(strategy, seed, maps, labeled=(40, 60, 80), boxes=(280, 420, 560), cost=None):
    cost = cost or [f + 0.1 * b for f, b in zip(labeled, boxes)]
    return {"strategy": strategy, "run_seed": seed, "map_per_round": list(maps), "labeled_per_round": list(labeled),
            "boxes_per_round": list(boxes), "cost_per_round": list(cost),
            "map_unclipped_per_round": [m + 0.05 for m in maps]}


def test_the_summary_pairs_by_seed_and_reports_parity_and_equal_box_areas():
    runs = [_run("random", 0, [0.10, 0.15, 0.20]), _run("random", 1, [0.12, 0.17, 0.22]),
            # Twice random's boxes per frame: better per frame, the same per box.
            _run("crowded", 0, [0.10, 0.20, 0.30], boxes=(280, 560, 840)),
            _run("crowded", 1, [0.12, 0.22, 0.32], boxes=(280, 560, 840))]
    summary = paired_summary(runs)
    crowded = summary["crowded"]
    assert crowded["alc_vs_random"]["seeds"] == [0, 1]
    # Per frame: ALC 0.20 vs 0.15 (seed 0) and 0.22 vs 0.17 (seed 1).
    assert crowded["alc_vs_random"]["mean"] == pytest.approx(0.05)
    assert crowded["alc_vs_random"]["ci95"] == pytest.approx([0.05, 0.05])
    assert crowded["final_map_vs_random"]["mean"] == pytest.approx(0.10)
    # Random's final mAP (0.20, 0.22) is reached at 60 frames: 75 % of random's 80.
    assert crowded["labels_to_parity"]["frames_per_seed"] == [60.0, 60.0]
    assert crowded["labels_to_parity"]["share_of_random_labels"] == pytest.approx(0.75)
    # At equal boxes (280..560) crowded's curve reads 0.10..0.20, random's 0.10..0.20: no edge.
    assert crowded["alc_boxes_vs_random"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert summary["random"]["alc_vs_random"]["mean"] == 0.0
    assert paired_summary([r for r in runs if r["strategy"] != "random"]) == {}
