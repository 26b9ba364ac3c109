"""Specifications of score ingest: append-only events, latest scores, atomic and idempotent writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.history import (
    AcquisitionHistory,
    DuplicateFrames,
    InvalidScores,
    ShardConflict,
    ShardFileError,
    UnknownFrames,
    write_score_shard,
)
from ceal_pipeline_tests.history.conftest import (
    N_FRAMES,
    frame_ids,
    provenance,
    register,
    stale_latest_scores,
    table_counts,
)

IDS = frame_ids()


def _shard(tmp_path: Path, ids, scores, round=1, shard=0, **kw) -> Path:
    return write_score_shard(tmp_path / f"r{round}-s{shard}.parquet", ids, scores, round=round, shard=shard,
                             **provenance(**kw))


def test_ingesting_a_shard_twice_changes_nothing(history, tmp_path):
    path = _shard(tmp_path, IDS[:10], np.linspace(0.0, 1.0, 10))
    first = history.ingest_score_shard(path, round=1, shard=0)
    before = table_counts(history)
    second = history.ingest_score_shard(path, round=1, shard=0)
    assert first.ingested and first.n_events == 10
    assert not second.ingested and second.batch_id == first.batch_id
    assert table_counts(history) == before


def test_the_same_shard_rescored_by_another_run_is_still_a_no_op(history, tmp_path):
    history.ingest_score_shard(_shard(tmp_path, IDS[:5], np.arange(5.0)), round=1, shard=0)
    rerun = write_score_shard(tmp_path / "rerun.parquet", IDS[:5], np.arange(5.0), round=1, shard=0,
                              **provenance(run_id="run-2"))
    assert not history.ingest_score_shard(rerun, round=1, shard=0).ingested


def test_a_shard_ingested_with_different_scores_is_refused(history, tmp_path):
    history.ingest_score_shard(_shard(tmp_path, IDS[:5], np.arange(5.0)), round=1, shard=0)
    changed = write_score_shard(tmp_path / "changed.parquet", IDS[:5], np.arange(5.0) + 1, round=1, shard=0,
                                **provenance())
    before = table_counts(history)
    with pytest.raises(ShardConflict, match="round 1 shard 0 was already ingested"):
        history.ingest_score_shard(changed, round=1, shard=0)
    assert table_counts(history) == before


@pytest.mark.parametrize("via", ["record_scores", "ingest_score_shard"])
def test_a_failing_write_leaves_no_partial_rows(history, tmp_path, monkeypatch, via):
    history.record_scores(IDS[:5], np.arange(5.0), round=0, **provenance())
    before = table_counts(history)

    def fail_after_events_were_inserted(*args, **kwargs):
        raise RuntimeError("disk full while refreshing latest scores")

    # By the time latest scores are advanced, the batch row and its events are
    # already inserted: the transaction must take them back.
    monkeypatch.setattr(AcquisitionHistory, "_advance_latest_scores", staticmethod(fail_after_events_were_inserted))
    with pytest.raises(RuntimeError, match="disk full"):
        if via == "record_scores":
            history.record_scores(IDS[:20], np.ones(20), round=1, **provenance())
        else:
            history.ingest_score_shard(_shard(tmp_path, IDS[:20], np.ones(20)), round=1, shard=0)
    assert table_counts(history) == before
    monkeypatch.undo()
    assert history.record_scores(IDS[:20], np.ones(20), round=1, shard=0, **provenance()).ingested


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_rejected_naming_the_frames(history, bad):
    scores = np.arange(10.0)
    scores[[3, 7]] = bad
    before = table_counts(history)
    with pytest.raises(InvalidScores) as error:
        history.record_scores(IDS[:10], scores, round=1, **provenance())
    assert IDS[3] in str(error.value) and IDS[7] in str(error.value) and "2 frames" in str(error.value)
    assert table_counts(history) == before


def test_a_shard_file_with_nan_scores_is_rejected(history, tmp_path):
    # Written by a foreign tool: write_score_shard itself refuses NaN.
    path = tmp_path / "foreign.parquet"
    con = duckdb.connect()
    con.execute(
        """
        COPY (SELECT * FROM (VALUES (?, 'NaN'::DOUBLE), (?, 1.0)) t(frame_id, score)
              CROSS JOIN (SELECT 1 AS round, 0 AS shard, 'm' AS model_version, 'f' AS acquisition_fn,
                                 'r' AS run_id, TIMESTAMP '2026-01-01' AS scored_at))
        TO '""" + str(path) + "' (FORMAT parquet)",
        [IDS[0], IDS[1]],
    )
    con.close()
    with pytest.raises(InvalidScores, match=f"{IDS[0]}=nan"):
        history.ingest_score_shard(path, round=1, shard=0)
    with pytest.raises(InvalidScores, match=IDS[0]):
        write_score_shard(tmp_path / "x.parquet", IDS[:2], [np.nan, 1.0], round=1, shard=0, **provenance())


def test_unknown_frame_ids_are_rejected_naming_them(history):
    before = table_counts(history)
    with pytest.raises(UnknownFrames) as error:
        history.record_scores([IDS[0], "ghost-1", "ghost-2"], [1.0, 2.0, 3.0], round=1, **provenance())
    assert "2 frames (ghost-1, ghost-2)" in str(error.value) and "register them first" in str(error.value)
    assert table_counts(history) == before
    assert history.unknown_frame_scores() == 0


def test_duplicate_frame_ids_in_one_batch_are_rejected_naming_them(history, tmp_path):
    with pytest.raises(DuplicateFrames, match=IDS[2]):
        history.record_scores([IDS[1], IDS[2], IDS[2]], [1.0, 2.0, 3.0], round=1, **provenance())
    with pytest.raises(DuplicateFrames, match=IDS[4]):
        _shard(tmp_path, [IDS[4], IDS[4]], [1.0, 2.0])


def test_a_shard_for_another_round_or_shard_is_refused(history, tmp_path):
    path = _shard(tmp_path, IDS[:3], [1.0, 2.0, 3.0], round=2, shard=1)
    with pytest.raises(ShardFileError, match="holds round 2 shard 1, not round 3 shard 1"):
        history.ingest_score_shard(path, round=3, shard=1)


def test_unreadable_or_incomplete_shard_files_name_the_file_and_the_fix(history, tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    fix = "candidate_scores partition r0001-s000 with the config rescore_existing: true"
    with pytest.raises(ShardFileError, match=rf"(?s)garbage\.parquet cannot be read.*{fix}"):
        history.ingest_score_shard(garbage, round=1, shard=0)
    with pytest.raises(ShardFileError, match="does not exist"):
        history.ingest_score_shard(tmp_path / "missing.parquet", round=1, shard=0)
    thin = tmp_path / "thin.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'a' AS frame_id, 1.0 AS score) TO '{thin}' (FORMAT parquet)")
    con.close()
    with pytest.raises(ShardFileError, match="lacks columns"):
        history.ingest_score_shard(thin, round=1, shard=0)


def test_a_shard_scored_by_another_model_than_the_rounds_detector_is_refused_before_any_ingest(history, tmp_path):
    history.save_candidate_pool(1, frame_ids=IDS[:10], n_shards=2)
    good = _shard(tmp_path / "a", list(history.candidate_pool(1, shard=0).frame_ids), np.ones(5), round=1, shard=0)
    evil = write_score_shard(tmp_path / "b" / "s1.parquet", list(history.candidate_pool(1, shard=1).frame_ids),
                             np.ones(5), round=1, shard=1, model_version="evil-model", acquisition_fn="fn", run_id="r")
    with pytest.raises(ShardFileError, match=r"(?s)s1\.parquet.*scored by model 'evil-model'.*not by the round's "
                                             r"detector.*rescore_existing: true"):
        history.ingest_score_shards({0: good, 1: evil}, round=1, model_version=provenance()["model_version"])
    assert history.score_event_count() == 0  # neither shard: one transaction


def test_a_shard_must_score_exactly_its_candidate_pool_shard(history, tmp_path):
    history.start_round(1, seed=1, parameters={})
    history.save_candidate_pool(1, frame_ids=IDS[:10], n_shards=2)
    shard0 = list(history.candidate_pool(1, shard=0).frame_ids)
    with pytest.raises(ShardConflict, match=f"not in round 1's candidate pool shard 0: 1 frame \\({IDS[20]}\\)"):
        history.ingest_score_shard(_shard(tmp_path, shard0 + [IDS[20]], np.ones(6)), round=1, shard=0)
    with pytest.raises(ShardConflict, match=f"no scores for 1 frame \\({shard0[-1]}\\)"):
        history.ingest_score_shard(_shard(tmp_path, shard0[:-1], np.ones(4)), round=1, shard=0)
    with pytest.raises(ShardConflict, match="has shards 0..1, not 5"):
        history.record_scores(shard0, np.ones(5), round=1, shard=5, **provenance())
    assert history.round_records()[0].missing_shards == (0, 1)
    history.ingest_score_shard(_shard(tmp_path, shard0, np.ones(5)), round=1, shard=0)
    assert (history.round_records()[0].shards_ingested, history.round_records()[0].missing_shards) == ((0,), (1,))


def test_score_events_are_appended_never_updated(history):
    history.record_scores(IDS[:5], [1.0, 2.0, 3.0, 4.0, 5.0], round=0, **provenance())
    con = duckdb.connect(str(history.path))
    first = con.execute("SELECT * FROM score_event_log ORDER BY frame_id").fetchall()
    con.close()
    history.record_scores(IDS[:5], [9.0] * 5, round=1, **provenance(model_version="detector-r1"))
    con = duckdb.connect(str(history.path))
    later = con.execute("SELECT * FROM score_event_log WHERE round = 0 ORDER BY frame_id").fetchall()
    assert con.execute("SELECT count(*) FROM score_events").fetchone()[0] == 10
    con.close()
    assert later == first


@settings(max_examples=15, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.integers(0, 4),  # round, in any order: shards of old rounds may arrive late
            st.sets(st.integers(0, 11), min_size=1),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_latest_score_reflects_the_newest_event(batches):
    ids = frame_ids(12)
    expected: dict[str, tuple[int, int, float]] = {}  # frame -> (round, batch order, score)
    with tempfile.TemporaryDirectory() as folder:
        history = AcquisitionHistory(Path(folder) / "h.duckdb", threads=1)
        register(history, ids)
        for order, (round_index, members, base) in enumerate(batches):
            chosen = [ids[i] for i in sorted(members)]
            scores = [base + i for i in sorted(members)]
            history.record_scores(chosen, scores, round=round_index, **provenance())
            for frame, score in zip(chosen, scores):
                # The newest round wins; within a round, the batch ingested last.
                if frame not in expected or (round_index, order) >= expected[frame][:2]:
                    expected[frame] = (round_index, order, score)
        latest = history.latest_scores(ids)
        for i, frame in enumerate(ids):
            if frame in expected:
                assert latest[i] == expected[frame][2]
            else:
                assert np.isnan(latest[i])
        pool = history.unlabeled_pool(with_frame_ids=True)
        assert list(pool.frame_ids) == ids
        np.testing.assert_array_equal(pool.scores, latest)
        assert stale_latest_scores(history) == 0


def test_rebuild_latest_scores_repairs_a_tampered_state(history):
    history.record_scores(IDS[:3], [1.0, 2.0, 3.0], round=0, **provenance())
    con = duckdb.connect(str(history.path))
    con.execute("UPDATE frame_state SET latest_score = 99 WHERE frame_key = 0")
    con.close()
    assert stale_latest_scores(history) == 1
    assert history.rebuild_latest_scores() == 1
    assert history.latest_scores(IDS[:1])[0] == 1.0 and stale_latest_scores(history) == 0


def test_recent_scores_keeps_each_frames_last_m_events(history):
    for round_index in range(4):
        history.record_scores(IDS[:2], [round_index, 10 + round_index], round=round_index, **provenance())
    recent = history.recent_scores(last_m=3)
    assert list(recent.frame_ids) == [IDS[0]] * 3 + [IDS[1]] * 3
    assert list(recent.rounds) == [1, 2, 3, 1, 2, 3]
    assert list(recent.scores) == [1.0, 2.0, 3.0, 11.0, 12.0, 13.0]


def test_round_scores_are_the_fresh_scores_of_one_round(history):
    history.record_scores(IDS[:3], [1.0, 2.0, 3.0], round=0, **provenance())
    history.record_scores(IDS[1:3], [5.0, 6.0], round=1, **provenance())
    fresh = history.round_scores(1)
    assert list(fresh.frame_ids) == IDS[1:3] and list(fresh.scores) == [5.0, 6.0]
    assert len(history.round_scores(7).frame_ids) == 0
    assert history.score_event_count() == 5 and N_FRAMES == history.frame_count()


def test_a_rounds_shards_merge_in_one_transaction_all_or_nothing(history, tmp_path):
    history.start_round(1, seed=1, parameters={})
    history.save_candidate_pool(1, frame_ids=IDS[:12], n_shards=3)
    pool = history.candidate_pool(1)
    paths = {k: _shard(tmp_path, pool.shard(k), np.arange(4.0) + k, round=1, shard=k) for k in range(3)}
    broken = dict(paths)
    broken[2] = write_score_shard(tmp_path / "stale.parquet", list(pool.shard(2)[:3]) + [IDS[30]], np.ones(4),
                                  round=1, shard=2, **provenance())
    before = table_counts(history)
    with pytest.raises(ShardConflict, match="shard 2"):
        history.ingest_score_shards(broken, round=1)
    assert table_counts(history) == before  # shards 0 and 1 were valid, yet nothing was written
    history.ingest_score_shard(paths[0], round=1, shard=0)  # a partial earlier merge
    results = history.ingest_score_shards(paths, round=1)
    assert [(r.shard, r.ingested, r.n_events) for r in results] == [(0, False, 4), (1, True, 4), (2, True, 4)]
    assert history.round_records()[-1].shards_ingested == (0, 1, 2)
    np.testing.assert_array_equal(history.latest_scores(pool.frame_ids), np.repeat([0.0, 1.0, 2.0], 4)
                                  + np.tile(np.arange(4.0), 3))
    assert stale_latest_scores(history) == 0
