"""Specification of the acquisition strategies and the class-balanced initial pool
(numpy only: no network is trained here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.validation.protocol import class_balanced_initial_pool
from ceal_pipeline.validation.strategies import Strategy, acquire, paper_strategies


def fixed_scores(pool_size: int, seed: int = 0):
    """A score function with a fixed value per pool image, and a log of what it scored."""
    values = np.random.default_rng(seed).random(pool_size)
    scored: list[np.ndarray] = []

    def score(indices: np.ndarray) -> np.ndarray:
        scored.append(indices.copy())
        return values[indices]

    return score, scored, values


def run_acquisition(name: str, unlabeled, latest, k=20, seed=7, round_index=1, **kwargs):
    score, scored, values = fixed_scores(len(latest))
    return acquire(Strategy.parse(name), unlabeled=unlabeled, latest_scores=latest, k=k, score=score,
                   run_seed=seed, round_index=round_index, temperature=0.1, **kwargs), scored, values


def test_strategy_names_follow_the_paper():
    assert paper_strategies((2500, 5000, 10000)) == [
        "random", "entropy", "variation_ratios",
        "ceal_entropy_2500", "ceal_entropy_5000", "ceal_entropy_10000",
        "ceal_variation_ratios_2500", "ceal_variation_ratios_5000", "ceal_variation_ratios_10000",
        "bald",
    ]
    assert Strategy.parse("ceal_variation_ratios_5000") == Strategy(
        "ceal_variation_ratios_5000", "ceal", "variation_ratios", 5000)
    assert Strategy.parse("entropy").acquisition_fn == "predictive_entropy"


@pytest.mark.parametrize("name", ["ceal_entropy", "ceal_entropy_0", "entropie", "ceal_foo_10"])
def test_unknown_strategy_names_are_rejected_with_the_accepted_forms(name):
    with pytest.raises(ValueError, match="ceal_<function>_<candidate pool size>"):
        Strategy.parse(name)


@settings(max_examples=25, deadline=None)
@given(pool=st.integers(200, 600), m_extra=st.integers(0, 300), seed=st.integers(0, 2**31), k=st.integers(1, 50))
def test_ceal_with_pool_at_least_the_unlabeled_count_equals_full_pool_acquisition(pool, m_extra, seed, k):
    rng = np.random.default_rng(seed)
    unlabeled = np.sort(rng.choice(pool, size=pool - 20, replace=False))
    latest = rng.random(pool)  # a history, so CEAL samples instead of backfilling
    m = len(unlabeled) + m_extra
    full, full_scored, _ = run_acquisition("entropy", unlabeled, latest, k=k, seed=seed)
    ceal, ceal_scored, _ = run_acquisition(f"ceal_entropy_{m}", unlabeled, latest, k=k, seed=seed)
    np.testing.assert_array_equal(ceal.selected, full.selected)
    np.testing.assert_array_equal(ceal_scored[0], full_scored[0])


def test_ceal_rescores_only_its_candidate_pool_and_picks_their_top_k():
    unlabeled = np.arange(100, 1000)
    latest = np.full(1000, np.nan)
    latest[unlabeled] = np.linspace(0, 1, len(unlabeled))
    result, scored, values = run_acquisition("ceal_entropy_150", unlabeled, latest, k=20)
    assert len(scored) == 1 and len(scored[0]) == 150 and set(scored[0]) <= set(unlabeled)
    expected = scored[0][np.argsort(-values[scored[0]])[:20]]
    np.testing.assert_array_equal(result.selected, np.sort(expected))
    assert result.candidate_seed is not None
    # The softmax over stale scores favours frames that scored high before.
    assert np.median(latest[scored[0]]) > 0.7


def test_ceal_backfills_the_whole_pool_when_there_is_no_history():
    unlabeled = np.arange(500)
    latest = np.full(500, np.nan)
    result, scored, _ = run_acquisition("ceal_variation_ratios_50", unlabeled, latest)
    assert len(scored[0]) == 500 and result.candidate_seed is None
    result, scored, _ = run_acquisition("ceal_variation_ratios_50", unlabeled, latest, backfill_first_round=False)
    assert len(scored[0]) == 50


def test_ceal_candidate_pool_is_reproducible_from_run_seed_and_round():
    unlabeled = np.arange(2000)
    latest = np.random.default_rng(1).random(2000)
    first, scored_a, _ = run_acquisition("ceal_entropy_100", unlabeled, latest, seed=3, round_index=4)
    again, scored_b, _ = run_acquisition("ceal_entropy_100", unlabeled, latest, seed=3, round_index=4)
    other, scored_c, _ = run_acquisition("ceal_entropy_100", unlabeled, latest, seed=3, round_index=5)
    np.testing.assert_array_equal(scored_a[0], scored_b[0])
    assert first.candidate_seed == again.candidate_seed != other.candidate_seed
    assert not np.array_equal(scored_a[0], scored_c[0])


def test_random_strategy_scores_nothing_and_draws_distinct_unlabeled_images():
    unlabeled = np.arange(0, 1000, 2)
    result, scored, _ = run_acquisition("random", unlabeled, np.full(1000, np.nan), k=60)
    assert scored == [] and result.scored.size == 0
    assert len(np.unique(result.selected)) == 60 and set(result.selected) <= set(unlabeled)


def test_asking_for_more_images_than_are_unlabeled_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot acquire 30 images from 20 unlabeled"):
        run_acquisition("entropy", np.arange(20), np.full(20, np.nan), k=30)


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=10, max_size=400).map(np.array), seed=st.integers(0, 2**31),
       size_fraction=st.floats(0.0, 1.0))
def test_class_balanced_initial_pool_is_balanced(labels, seed, size_fraction):
    labels = np.concatenate([labels, np.arange(10).repeat(20)])  # every class has >= 20 images
    size = 10 + int(size_fraction * 190)
    chosen = class_balanced_initial_pool(labels, size, 10, seed)
    counts = np.bincount(labels[chosen], minlength=10)
    assert len(chosen) == size and len(np.unique(chosen)) == size
    assert counts.max() - counts.min() <= 1 and counts.min() == size // 10


def test_initial_pool_names_the_class_that_is_too_small():
    labels = np.array([0] * 50 + [1] * 2)
    with pytest.raises(ValueError, match="class 1 has 2 pool images"):
        class_balanced_initial_pool(labels, 20, 2, seed=0)
