"""Spec: the batch is the top-K of (frame_id, score) pairs, capped per sequence, ties by id."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.selection import select_top_k


def test_fresh_score_lands_on_its_frame_when_candidates_arrive_in_random_order():
    rng = np.random.default_rng(0)
    ids = np.array([f"seq{i // 10:02d}-{i:04d}" for i in range(200)])
    true_score = dict(zip(ids.tolist(), rng.random(200).tolist()))
    expected = sorted(true_score, key=lambda f: -true_score[f])[:15]
    for _ in range(5):  # shards finish in any order
        shuffled = rng.permutation(ids)
        picked = select_top_k(shuffled, np.array([true_score[f] for f in shuffled]), 15)
        assert picked.tolist() == expected


def test_ties_are_broken_by_frame_id_ascending():
    ids = np.array(["c", "a", "d", "b"])
    scores = np.array([1.0, 1.0, 0.5, 1.0])
    assert select_top_k(ids, scores, 4).tolist() == ["a", "b", "c", "d"]
    assert select_top_k(np.array([30, 10, 20]), np.array([2.0, 2.0, 2.0]), 2).tolist() == [10, 20]


def test_per_sequence_cap_skips_to_the_next_best_sequence():
    ids = np.array(["a1", "a2", "a3", "b1", "c1"])
    scores = np.array([0.9, 0.8, 0.7, 0.5, 0.1])
    sequences = np.array(["a", "a", "a", "b", "c"])
    assert select_top_k(ids, scores, 3, sequences, per_sequence_cap=2).tolist() == ["a1", "a2", "b1"]
    assert select_top_k(ids, scores, 3, sequences, per_sequence_cap=1).tolist() == ["a1", "b1", "c1"]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 60), st.integers(1, 8), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_selection_respects_the_cap_and_is_the_best_capped_batch(n, n_sequences, cap, seed):
    rng = np.random.default_rng(seed)
    ids = np.array([f"f{i:03d}" for i in range(n)])
    scores = rng.integers(0, 5, n).astype(float)  # many ties on purpose
    sequences = rng.integers(0, n_sequences, n)
    selectable = sum(min(cap, int((sequences == s).sum())) for s in np.unique(sequences))
    k = int(rng.integers(0, selectable + 1))
    picked = select_top_k(ids, scores, k, sequences, per_sequence_cap=cap)
    assert picked.size == k and np.unique(picked).size == k
    chosen = np.isin(ids, picked)
    assert np.bincount(sequences[chosen], minlength=n_sequences).max(initial=0) <= cap
    # Reference: walk the ranking and take a frame when its sequence has room.
    room, reference = {}, []
    for i in sorted(range(n), key=lambda i: (-scores[i], ids[i])):
        if len(reference) < k and room.get(sequences[i], 0) < cap:
            room[sequences[i]] = room.get(sequences[i], 0) + 1
            reference.append(ids[i])
    assert picked.tolist() == reference


def test_k_larger_than_the_candidates_is_an_error_unless_allowed():
    ids, scores = np.array(["a", "b"]), np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="k=3.*only 2"):
        select_top_k(ids, scores, 3)
    with pytest.raises(ValueError, match="after a cap of 1"):
        select_top_k(ids, scores, 2, np.array(["s", "s"]), per_sequence_cap=1)
    assert select_top_k(ids, scores, 3, allow_fewer=True).tolist() == ["b", "a"]


def test_nan_scores_and_duplicate_frames_are_rejected_naming_the_frames():
    with pytest.raises(ValueError, match="'b'"):
        select_top_k(np.array(["a", "b"]), np.array([1.0, np.nan]), 1)
    with pytest.raises(ValueError, match="'a'.*more than once"):
        select_top_k(np.array(["a", "a", "b"]), np.array([1.0, 2.0, 3.0]), 1)
    with pytest.raises(ValueError, match="sequence_ids"):
        select_top_k(np.array(["a"]), np.array([1.0]), 1, per_sequence_cap=2)
