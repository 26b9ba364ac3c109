"""Specifications of a round's stored decisions: seed, candidate pool, selection, pruning, export."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.history import (
    AcquisitionHistory,
    EmptyCandidatePool,
    HistoryError,
    RoundConflict,
    UnavailableFrames,
    UnknownFrames,
)
from ceal_pipeline_tests.history.conftest import (
    N_FRAMES,
    frame_ids,
    provenance,
    recorded_round,
    register,
    table_counts,
)

IDS = frame_ids()


def test_a_round_restarted_identically_is_a_no_op_and_differently_is_refused(history):
    assert history.start_round(1, seed=42, parameters={"temperature": 0.5, "fraction": np.float64(0.05)})
    assert not history.start_round(1, seed=42, parameters={"fraction": 0.05, "temperature": 0.5})
    with pytest.raises(RoundConflict, match="round 1 was started with seed 42"):
        history.start_round(1, seed=43, parameters={"temperature": 0.5, "fraction": 0.05})
    assert history.rounds() == [1]


def test_the_candidate_pool_is_saved_in_balanced_contiguous_shards(history):
    pool = history.unlabeled_pool()
    keys = pool.frame_keys[::-1][:10]  # draw order is kept, whatever it is
    assert history.save_candidate_pool(3, frame_keys=keys, n_shards=3, seed=7)
    saved = history.candidate_pool(3)
    assert list(saved.frame_ids) == list(history.frame_ids_for_keys(keys))
    assert list(saved.shards) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (saved.n_shards, saved.seed) == (3, 7)
    assert list(history.candidate_pool(3, shard=1).frame_ids) == list(saved.shard(1))


def test_resaving_the_same_pool_is_a_no_op_and_another_pool_is_refused(history):
    assert history.save_candidate_pool(1, frame_ids=IDS[:6], n_shards=2)
    before = table_counts(history)
    assert not history.save_candidate_pool(1, frame_ids=IDS[:6], n_shards=2)
    with pytest.raises(RoundConflict, match="round 1 already has a candidate pool of 6 frames"):
        history.save_candidate_pool(1, frame_ids=IDS[1:7], n_shards=2)
    assert table_counts(history) == before


def test_an_empty_pool_or_one_beyond_what_is_left_is_refused(history):
    with pytest.raises(EmptyCandidatePool, match="is empty"):
        history.save_candidate_pool(1, frame_ids=[])
    with pytest.raises(EmptyCandidatePool, match="n_shards must be between 1 and the pool size 2"):
        history.save_candidate_pool(1, frame_ids=IDS[:2], n_shards=3)
    history.add_labels(IDS[: N_FRAMES - 2], round=0)
    before = table_counts(history)
    with pytest.raises(UnavailableFrames, match=r"not in the unlabeled pool: 3 frames .* \(2 frames are left in it\)"):
        history.save_candidate_pool(1, frame_ids=IDS[-5:])
    with pytest.raises(UnknownFrames, match="not in the catalog"):
        history.save_candidate_pool(1, frame_keys=np.array([10**9]))
    with pytest.raises(EmptyCandidatePool, match="round 1 has no candidate pool yet"):
        history.candidate_pool(1)
    assert table_counts(history) == before


def _scored_round(history, round_index=1, n=8):
    history.save_candidate_pool(round_index, frame_ids=IDS[:n], n_shards=1)
    history.record_scores(IDS[:n], np.arange(n, dtype=float), round=round_index, shard=0, **provenance())
    return history.round_scores(round_index)


def test_the_selection_comes_from_the_rounds_pool_and_is_fixed_once_saved(history):
    fresh = _scored_round(history)
    top = np.argsort(-fresh.scores)[:3]
    assert history.save_selection(1, fresh.frame_ids[top], fresh.scores[top])
    assert not history.save_selection(1, fresh.frame_ids[top], fresh.scores[top])
    stored = history.selection(1)
    assert list(stored.frame_ids) == list(fresh.frame_ids[top]) and list(stored.scores) == [7.0, 6.0, 5.0]
    with pytest.raises(RoundConflict, match="already has a selection of 3 frames"):
        history.save_selection(1, fresh.frame_ids[:3], fresh.scores[:3])
    with pytest.raises(UnavailableFrames, match=f"not in round 2's candidate pool: 1 frame \\({IDS[30]}\\)"):
        _scored_round(history, 2)
        history.save_selection(2, [IDS[30]], [1.0])
    with pytest.raises(EmptyCandidatePool, match="select at least one frame"):
        history.save_selection(3, [], [])


def test_exactly_one_export_per_round(history):
    fresh = _scored_round(history)
    history.save_selection(1, fresh.frame_ids[:2], fresh.scores[:2])
    with pytest.raises(RoundConflict, match="differ from the round's selection"):
        history.record_export(1, "/exports/r1.csv", [fresh.frame_ids[0]])
    assert history.record_export(1, "/exports/r1.csv", fresh.frame_ids[:2], manifest={"vendor": "acme"})
    assert not history.record_export(1, "/exports/r1.csv", fresh.frame_ids[1::-1][:2])  # same frames, any order
    with pytest.raises(RoundConflict, match="already exported to /exports/r1.csv"):
        history.record_export(1, "/exports/r1-again.csv", fresh.frame_ids[2:4])
    assert history.export(1)["manifest"] == {"vendor": "acme"} and history.export(2) is None
    with pytest.raises(RoundConflict, match="round 5 has no saved selection"):
        history.record_export(5, "/exports/r5.csv", fresh.frame_ids[:1])


def test_the_round_record_says_how_far_each_round_got_from_the_history_alone(history):
    assert history.round_records() == []
    history.start_round(1, seed=9, parameters={})
    assert (history.round_records()[0].stage, history.round_records()[0].missing_shards) == ("started", ())
    history.record_round_model(1, "det-a")
    history.save_candidate_pool(1, frame_ids=IDS[:8], n_shards=2)
    record = history.round_records()[0]
    assert (record.stage, record.model_version, record.pool_frames, record.shards) == ("pool drawn", "det-a", 8, 2)
    assert record.missing_shards == (0, 1)
    pool = history.candidate_pool(1)
    history.record_scores(list(pool.shard(1)), np.ones(4), round=1, shard=1, **provenance())
    assert history.round_records()[0].missing_shards == (0,)
    history.record_scores(list(pool.shard(0)), np.arange(4.0), round=1, shard=0, **provenance())
    assert (history.round_records()[0].stage, history.round_records()[0].shards_ingested) == ("scored", (0, 1))
    fresh = history.round_scores(1)
    history.save_selection(1, fresh.frame_ids[:3], fresh.scores[:3])
    assert (history.round_records()[0].stage, history.round_records()[0].selected) == ("selected", 3)
    history.record_export(1, "/exports/r1", fresh.frame_ids[:3])
    exported = history.round_records()[0].to_dict()
    assert exported["stage"] == "exported" and exported["missing_shards"] == []
    assert {k: exported["export"][k] for k in ("path", "n_frames")} == {"path": "/exports/r1", "n_frames": 3}
    history.start_round(2, seed=10, parameters={})
    assert [(r.round, r.stage) for r in history.round_records()] == [(1, "exported"), (2, "started")]


def test_pruning_is_reversible_and_keeps_the_history(history):
    history.record_scores(IDS[:3], [0.1, 0.2, 0.3], round=0, **provenance())
    assert history.prune(IDS[:3], round=2, reason="persistently low") == 3
    assert history.prune(IDS[:1], round=3, reason="again") == 0  # already pruned: no second event
    assert list(history.pruned_frames().frame_ids) == IDS[:3]
    assert len(history.unlabeled_pool()) == N_FRAMES - 3
    assert history.unprune(IDS[1:2], reason="new model") == 1
    pruned = history.pruned_frames()
    assert list(pruned.frame_ids) == [IDS[0], IDS[2]] and set(pruned.reasons) == {"persistently low"}
    assert IDS[1] in set(history.unlabeled_pool(with_frame_ids=True).frame_ids)
    assert history.latest_scores([IDS[1]])[0] == 0.2  # its score history survived
    history.add_labels([IDS[5]], round=2)
    with pytest.raises(UnavailableFrames, match="labeled, so not in the pool to prune"):
        history.prune([IDS[5]], round=3, reason="low")


def test_a_rounds_seed_parameters_and_ledger_are_recorded_once_it_is_started(history):
    with pytest.raises(HistoryError, match="round 1 was never started"):
        history.record_ledger(1, {"frames_scored": 8})
    history.start_round(1, seed=9, parameters={"temperature": 1.0})
    history.record_ledger(1, {"frames_scored": np.int64(8), "scoring_s": 1.5})
    assert history.round_parameters(1) == {"temperature": 1.0}
    assert recorded_round(history, 1) == {
        "seed": 9, "parameters": {"temperature": 1.0}, "ledger": {"frames_scored": 8, "scoring_s": 1.5}}


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(1, N_FRAMES), st.integers(1, 8)), min_size=1, max_size=4))
def test_pool_shards_are_contiguous_and_balanced_within_one_frame(tmp_path_factory, sizes):
    history = AcquisitionHistory(tmp_path_factory.mktemp("h") / "h.duckdb", threads=1)
    register(history, IDS)
    for round_index, (m, n_shards) in enumerate(sizes):
        n_shards = min(n_shards, m)
        history.save_candidate_pool(round_index, frame_ids=IDS[:m], n_shards=n_shards)
        shards = history.candidate_pool(round_index).shards
        assert list(shards) == sorted(shards) and set(shards) == set(range(n_shards))
        counts = np.bincount(shards)
        assert counts.max() - counts.min() <= 1 and counts.sum() == m


@pytest.mark.parametrize("bad_round", [-1, 2**31, 1.5, True, "1"])
def test_rounds_must_be_non_negative_integers(history, bad_round):
    with pytest.raises(ValueError, match="round must be an integer"):
        history.save_candidate_pool(bad_round, frame_ids=IDS[:2])
    with pytest.raises(ValueError, match="round must be an integer"):
        history.record_scores(IDS[:1], [1.0], round=bad_round, **provenance())


def test_label_rounds_and_fresh_scores_by_model_version(history):
    history.add_labels(IDS[:2], round=0, source="seed")
    history.add_labels(IDS[1:4], round=3, source="vendor")
    assert history.label_rounds() == {IDS[0]: 0, IDS[1]: 0, IDS[2]: 3, IDS[3]: 3}
    history.record_scores(IDS[5:7], [1.0, 2.0], round=4, **provenance(model_version="old"))
    history.record_scores(IDS[6:8], [3.0, 4.0], round=4, **provenance(model_version="new"))
    fresh = history.round_scores(4, model_version="new")
    assert list(fresh.frame_ids) == IDS[6:8] and list(fresh.scores) == [3.0, 4.0]
    assert list(history.round_scores(4).scores) == [1.0, 3.0, 4.0]
