"""Opening a round draws its pool once and records it; opening it again resumes it as recorded."""

from __future__ import annotations

import pytest

from ceal_pipeline.configuration.presets import PRESETS
from ceal_pipeline.core.history import RoundConflict
from ceal_pipeline.core.round_opening import RoundNotDrawable, open_round

from .conftest import N_FRAMES

PARAMETERS = {**PRESETS["cpu-small"]["round"], "prior": "optimistic", "pool_fraction": 0.25, "shard_size": 4}


def test_a_round_is_drawn_recorded_and_then_resumed_as_recorded(history):
    first = open_round(history, 0, PARAMETERS, "detector-a")
    again = open_round(history, 0, {**PARAMETERS, "temperature": 5.0}, "detector-a")

    assert not first.reused and again.reused
    assert len(first.pool) == N_FRAMES // 4 and first.pool.n_shards == -(-len(first.pool) // 4)
    assert list(again.pool.frame_ids) == list(first.pool.frame_ids)
    assert again.parameters == first.parameters and first.parameters["temperature"] == PARAMETERS["temperature"]
    assert first.parameters["unlabeled_frames"] == N_FRAMES and len(first.unlabeled_scores) == N_FRAMES
    assert again.unlabeled_scores is None
    assert history.round_model_version(0) == "detector-a"


def test_a_round_started_with_other_parameters_is_a_conflict(history):
    history.start_round(1, seed=7, parameters={"k": 1})
    with pytest.raises(RoundConflict, match="round 1 was started with seed 7"):
        open_round(history, 1, PARAMETERS, "detector-a")


def test_a_pool_that_cannot_be_drawn_names_the_reason(history):
    history.add_labels([f"seq{i // 10}-frame{i:03d}" for i in range(N_FRAMES)], round=0, source="seed")
    with pytest.raises(RoundNotDrawable, match="the unlabeled pool is empty"):
        open_round(history, 0, PARAMETERS, "detector-a")
