"""Spec: prune a frame when each of its last m scores was in the bottom q of its round."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.pruning import persistently_low, round_quantiles


def _events(history: dict[str, dict[int, float]]):
    rows = [(f, r, s) for f, by_round in history.items() for r, s in by_round.items()]
    ids, rounds, scores = zip(*rows)
    return np.array(ids), np.array(rounds), np.array(scores, dtype=float)


def _round_fillers(n_rounds: int, n: int = 20) -> dict[str, dict[int, float]]:
    """``n`` frames scoring 10, 11, ..., 10 + n - 1 in every round, in rotating order,
    so that no filler is at the bottom of two consecutive rounds."""
    return {f"filler{i}": {r: 10.0 + (i + r) % n for r in range(n_rounds)} for i in range(n)}


def test_frame_low_in_each_of_its_last_three_rounds_is_pruned():
    history = _round_fillers(4) | {
        "dull": {0: 50.0, 1: 1.0, 2: 2.0, 3: 0.5},  # high once, then low three times
        "recovered": {0: 1.0, 1: 1.0, 2: 50.0, 3: 1.0},  # low 3 of 4, but not the last 3
        "young": {2: 0.0, 3: 0.0},  # only two scores: never pruned
    }
    # Round thresholds (0.2 quantile, linear): r1 12.2, r2 12.4, r3 11.4, so
    # dull is low in rounds 1-3; recovered is not low in round 2.
    assert persistently_low(*_events(history)).tolist() == ["dull"]


def test_quantile_is_taken_over_all_scores_of_the_round():
    # Round 0 is low for everyone: 0.1 there is still mid-pack, so "a" is not low in round 0.
    history = {
        "a": {0: 0.1, 1: 0.1, 2: 0.1},
        "b": {0: 0.05, 1: 5.0, 2: 5.0},
        "c": {0: 0.2, 1: 6.0, 2: 6.0},
        "d": {0: 0.3, 1: 7.0, 2: 7.0},
    }
    assert persistently_low(*_events(history), quantile=0.3).tolist() == []
    history["a"][0] = 0.0
    assert persistently_low(*_events(history), quantile=0.3).tolist() == ["a"]


def test_absolute_floor_must_also_be_undercut():
    history = _round_fillers(3, n=4) | {"x": {0: 1.0, 1: 1.0, 2: 1.0}}
    assert persistently_low(*_events(history)).tolist() == ["x"]
    assert persistently_low(*_events(history), floor=0.5).tolist() == []
    assert persistently_low(*_events(history), floor=2.0).tolist() == ["x"]


def test_a_round_where_everyone_scored_the_same_prunes_nobody():
    history = {f"f{i}": {r: 1.0 for r in range(5)} for i in range(10)}
    assert persistently_low(*_events(history)).size == 0


def test_last_m_is_configurable_and_counts_rounds_not_events_in_a_round():
    history = _round_fillers(2, n=8) | {"x": {0: 0.0, 1: 0.0}}
    ids, rounds, scores = _events(history)
    assert persistently_low(ids, rounds, scores, last_m=2).tolist() == ["x"]
    assert persistently_low(ids, rounds, scores, last_m=3).tolist() == []
    # A re-scored round does not count twice; the last event of that round wins.
    ids2 = np.append(ids, "x")
    rounds2 = np.r_[rounds, 1]
    scores2 = np.r_[scores, 99.0]
    # (Round 1's threshold moves up to 11.6 without x's 0.0, so filler0, at 10
    # then 11, is now low twice and goes instead.)
    assert persistently_low(ids2, rounds2, scores2, last_m=2).tolist() == ["filler0"]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4), st.floats(0.05, 0.95), st.integers(0, 2**32 - 1))
def test_vectorised_rule_matches_a_plain_reading_of_the_rule(n_frames, n_rounds, last_m, q, seed):
    rng = np.random.default_rng(seed)
    ids, rounds, scores = [], [], []
    for f in range(n_frames):
        for r in range(n_rounds):
            if rng.random() < 0.7:
                ids.append(f"f{f}")
                rounds.append(r)
                scores.append(float(rng.integers(0, 6)))
    if not ids:
        return
    ids, rounds, scores = np.array(ids), np.array(rounds), np.array(scores)
    expected = []
    for f in np.unique(ids):
        mine = np.flatnonzero(ids == f)
        last = mine[np.argsort(rounds[mine])][-last_m:]
        if len(mine) >= last_m and all(
            scores[e] < np.quantile(scores[rounds == rounds[e]], q) for e in last
        ):
            expected.append(f)
    assert persistently_low(ids, rounds, scores, last_m=last_m, quantile=q).tolist() == expected


def test_round_quantiles_equal_numpy_quantile_per_round():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 5, 300)
    values = rng.normal(size=300)
    expected = [np.quantile(values[codes == r], 0.2) for r in range(5)]
    np.testing.assert_allclose(round_quantiles(codes, values, 5, 0.2), expected)


def test_bad_events_are_rejected_naming_the_frame():
    with pytest.raises(ValueError, match="'f2'"):
        persistently_low(np.array(["f1", "f2"]), np.array([0, 0]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="quantile"):
        persistently_low(np.array(["f1"]), np.array([0]), np.array([1.0]), quantile=1.0)
