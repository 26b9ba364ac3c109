"""Specifications of Algorithm 1's round decisions (core.round), shared by the pipeline and the benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core import round as algorithm
from ceal_pipeline.core.seeding import derive_seed


def test_the_first_round_backfills_the_whole_pool_only_in_full_pool_mode_and_only_before_any_score():
    never = np.full(5, np.nan)
    some = np.array([np.nan, 0.3, np.nan, np.nan, np.nan])
    assert algorithm.backfills("full_pool", never)
    assert not algorithm.backfills("full_pool", some)
    assert not algorithm.backfills("prior", never)
    with pytest.raises(ValueError, match="round_zero_mode 'everything'"):
        algorithm.backfills("everything", never)


def test_a_backfill_draws_nothing_and_scores_every_unlabeled_frame():
    members = np.array([9, 3, 7, 1])
    pool = algorithm.draw_candidate_pool(members, np.full(4, np.nan), round_index=0, run_seed=5, temperature=0.1,
                                         count=2, round_zero_mode="full_pool")
    assert pool.backfill and pool.seed is None
    assert pool.members.tolist() == [1, 3, 7, 9]


def _draw(members, scores, **overrides):
    options = {"round_index": 3, "run_seed": 11, "temperature": 0.5, "fraction": 0.05} | overrides
    return algorithm.draw_candidate_pool(members, scores, **options)


def test_a_candidate_pool_is_a_sorted_draw_reproduced_by_its_recorded_round_seed():
    rng = np.random.default_rng(0)
    members = np.arange(1000, 2000)
    scores = rng.normal(size=1000)
    pool = _draw(members, scores)
    assert pool.seed == derive_seed(11, 3, "candidate_pool") and not pool.backfill
    assert len(pool.members) == 50 and len(set(pool.members.tolist())) == 50  # 5 % of 1000
    assert set(pool.members.tolist()) <= set(members.tolist()) and (np.diff(pool.members) > 0).all()
    assert _draw(members, scores).members.tolist() == pool.members.tolist()
    assert _draw(members, scores, round_index=4).members.tolist() != pool.members.tolist()
    assert _draw(members, scores, run_seed=12).members.tolist() != pool.members.tolist()


def test_a_candidate_pool_favours_high_scores_and_is_greedy_as_the_temperature_falls():
    rng = np.random.default_rng(1)
    members = np.arange(1000)
    scores = rng.normal(size=1000)
    tempered = _draw(members, scores, temperature=0.2)
    assert scores[tempered.members].mean() > np.quantile(scores, 0.75)
    greedy = _draw(members, scores, temperature=1e-6)
    assert greedy.members.tolist() == sorted(np.argsort(-scores)[:50].tolist())


def test_never_scored_frames_come_first_under_the_optimistic_prior():
    rng = np.random.default_rng(2)
    members = np.arange(1000)
    scores = rng.normal(size=1000)
    scores[::7] = np.nan  # 143 never scored: the optimistic prior ranks them with the best scored frame
    greedy = _draw(members, scores, temperature=1e-6)
    best = int(np.nanargmax(scores))
    assert set(greedy.members.tolist()) <= set(np.flatnonzero(np.isnan(scores)).tolist()) | {best}
    assert not np.isnan(scores[_draw(members, scores, temperature=1e-6, prior="pessimistic").members]).any()


def test_a_candidate_pool_larger_than_the_unlabeled_pool_is_the_whole_pool():
    members = np.arange(10)
    pool = algorithm.draw_candidate_pool(members, np.linspace(0, 1, 10), round_index=1, run_seed=0, temperature=1.0,
                                         count=50)
    assert pool.members.tolist() == list(range(10))


def test_an_empty_unlabeled_pool_is_a_clear_error():
    with pytest.raises(ValueError, match="round 2: the unlabeled pool is empty"):
        algorithm.draw_candidate_pool(np.array([], dtype=np.int64), np.array([]), round_index=2, run_seed=0,
                                      temperature=1.0, fraction=0.1)


@settings(max_examples=60, deadline=None)
@given(pool_size=st.integers(1, 5000), shard_size=st.integers(1, 600))
def test_shards_are_contiguous_balanced_and_no_larger_than_asked(pool_size, shard_size):
    n_shards = algorithm.shard_count(pool_size, shard_size)
    shards = algorithm.shard_of_positions(pool_size, n_shards)
    sizes = np.bincount(shards, minlength=n_shards)
    assert (np.diff(shards) >= 0).all() and sizes.min() >= 1
    assert sizes.max() - sizes.min() <= 1 and sizes.max() <= shard_size
    assert n_shards == -(-pool_size // shard_size)


def test_only_candidates_unlabeled_unpruned_and_not_awaiting_labels_may_be_bought():
    candidates = np.array(["a", "b", "c", "d", "e"], dtype=object)
    keep = algorithm.selectable(
        candidates, 3,
        label_rounds={"a": 3, "b": 4},  # a labeled for round 3 itself; b's labels count from round 4 on
        pruned={"c"}, awaiting_labels={"d"},
    )
    assert keep.tolist() == [False, True, False, False, True]


def test_the_seed_set_is_reproducible_and_refuses_more_frames_than_are_annotated():
    annotated = [f"f{i:03d}" for i in range(50)]
    first = algorithm.seed_set(annotated, 10, run_seed=4)
    assert first == algorithm.seed_set(list(reversed(annotated)), 10, run_seed=4) == sorted(first)
    assert len(set(first)) == 10 and set(first) <= set(annotated)
    assert first != algorithm.seed_set(annotated, 10, run_seed=5)
    with pytest.raises(ValueError, match="seed set of 51 frames.*only 50 annotated"):
        algorithm.seed_set(annotated, 51, run_seed=4)
