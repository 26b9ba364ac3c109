"""Spec: every random draw is seeded from (run seed, round, purpose), reproducibly."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.seeding import derive_seed


def test_derived_seed_is_stable_across_processes_and_versions():
    # A recorded seed must mean the same pool forever: pin one value.
    # A recorded seed must mean the same pool forever: these values are pinned,
    # a change here silently breaks re-running old rounds.
    assert derive_seed(0, 0) == derive_seed(0, 0, "candidate_pool") == 8716043573943250053
    assert derive_seed(1234, 7) == 6623904212019847879


@settings(deadline=None)
@given(st.integers(-(2**70), 2**70), st.integers(0, 10**6), st.text(min_size=1, max_size=20))
def test_derived_seed_is_a_non_negative_63_bit_int(run_seed, round_index, purpose):
    seed = derive_seed(run_seed, round_index, purpose)
    assert 0 <= seed < 2**63
    assert derive_seed(run_seed, round_index, purpose) == seed


def test_rounds_and_purposes_get_different_seeds():
    seeds = {derive_seed(42, r, p) for r in range(100) for p in ("candidate_pool", "mc_dropout")}
    assert len(seeds) == 200


@pytest.mark.parametrize(
    "args, error",
    [((1.5, 0), TypeError), ((1, -1), ValueError), ((1, True), TypeError), ((1, 0, ""), ValueError)],
)
def test_derive_seed_rejects_bad_arguments(args, error):
    with pytest.raises(error):
        derive_seed(*args)
