"""Specifications of the versioned schema and its migrations."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from ceal_pipeline.core.history import (
    LATEST_VERSION,
    MIGRATIONS,
    AcquisitionHistory,
    HistoryLocked,
    SchemaTooNew,
    apply_migrations,
)
from ceal_pipeline.core.history.schema import Migration, schema_version


def test_a_fresh_database_reaches_the_latest_version(tmp_path):
    history = AcquisitionHistory(tmp_path / "h.duckdb")
    con = duckdb.connect(str(history.path))
    assert schema_version(con) == LATEST_VERSION == MIGRATIONS[-1].version
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    assert {"frames", "labels", "score_batches", "score_events", "rounds", "candidate_pools", "selections",
            "prune_events", "exports", "quarantined_frames", "frame_state"} <= tables
    assert {"score_event_log", "latest_scores", "latest_scores_from_events", "unlabeled_pool"} <= views


def test_migrations_are_idempotent(tmp_path):
    path = tmp_path / "h.duckdb"
    AcquisitionHistory(path)
    AcquisitionHistory(path)  # opening again migrates nothing
    con = duckdb.connect(str(path))
    assert apply_migrations(con) == []
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    con.close()


def test_an_older_database_is_upgraded_in_order_and_keeps_its_data(tmp_path):
    path = tmp_path / "h.duckdb"
    history = AcquisitionHistory(path)
    history.register_frame_arrays(["f1"], ["s"])
    later = MIGRATIONS + (
        Migration(LATEST_VERSION + 1, "add a note column", ("ALTER TABLE frames ADD COLUMN note VARCHAR",)),
        Migration(LATEST_VERSION + 2, "fill it", ("UPDATE frames SET note = 'kept'",)),
    )
    con = duckdb.connect(str(path))
    assert apply_migrations(con, later) == [LATEST_VERSION + 1, LATEST_VERSION + 2]
    assert con.execute("SELECT frame_id, note FROM frames").fetchall() == [("f1", "kept")]
    con.close()


def test_a_failing_migration_leaves_the_previous_version_intact(tmp_path):
    path = tmp_path / "h.duckdb"
    AcquisitionHistory(path)
    broken = MIGRATIONS + (
        Migration(LATEST_VERSION + 1, "half done", ("CREATE TABLE extra (x INTEGER)", "SELECT * FROM missing_table")),
    )
    con = duckdb.connect(str(path))
    with pytest.raises(duckdb.CatalogException):
        apply_migrations(con, broken)
    assert schema_version(con) == LATEST_VERSION
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'extra'").fetchone()[0] == 0
    con.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "h.duckdb"
    AcquisitionHistory(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now()::TIMESTAMP)", [LATEST_VERSION + 1])
    con.close()
    with pytest.raises(SchemaTooNew, match="upgrade ceal-pipeline"):
        AcquisitionHistory(path)


def test_migrations_must_be_numbered_consecutively():
    con = duckdb.connect()
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        apply_migrations(con, (Migration(2, "skips 1", ()),))


def test_a_second_writer_process_gets_an_error_naming_the_fix(tmp_path):
    path = tmp_path / "h.duckdb"
    AcquisitionHistory(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(HistoryLocked, match="`duckdb` pool"):
            AcquisitionHistory(path)
    finally:
        holder.kill()
        holder.wait()


def test_a_version_one_history_with_a_saved_pool_migrates_and_keeps_the_pool(tmp_path):
    path = tmp_path / "h.duckdb"
    con = duckdb.connect(str(path))
    assert apply_migrations(con, MIGRATIONS[:1]) == [1]  # as wave 1 wrote it
    _register_as_version_one(con, ["f1", "f2", "f3"])
    con.execute("INSERT INTO candidate_pool_rounds VALUES (0, 2, 1, 7, now()::TIMESTAMP)")
    con.execute(
        "INSERT INTO candidate_pools SELECT 0, (row_number() OVER (ORDER BY frame_key) - 1)::INTEGER, frame_key, 0 "
        "FROM frames WHERE frame_id <> 'f3'"
    )
    con.close()

    history = AcquisitionHistory(path)  # opening migrates to the latest version

    pool = history.candidate_pool(0)
    assert list(pool.frame_ids) == ["f1", "f2"] and pool.seed == 7 and pool.sampling_s is None
    assert history.has_candidate_pool(0) and not history.has_candidate_pool(1)
    con = duckdb.connect(str(path))
    assert schema_version(con) == LATEST_VERSION >= 2
    con.close()


def _register_as_version_one(con, frame_ids: list[str]) -> None:
    """Frames as versions 1-4 stored them: every catalog attribute, and the frame_state rows."""
    for key, frame_id in enumerate(frame_ids):
        con.execute("INSERT INTO frames VALUES (?, ?, 's', ?, ?, 'train', 'synthetic', now()::TIMESTAMP)",
                    [key, frame_id, float(key), f"/lidar/{frame_id}.bin"])
        con.execute("INSERT INTO frame_cameras VALUES (?, 'front', ?)", [key, f"/cam/{frame_id}.jpg"])
        con.execute("INSERT INTO frame_state (frame_key) VALUES (?)", [key])


def test_version_five_keeps_a_frames_key_id_and_sequence_and_leaves_the_rest_to_the_catalog(tmp_path):
    path = tmp_path / "h.duckdb"
    con = duckdb.connect(str(path))
    assert apply_migrations(con, MIGRATIONS[:4]) == [1, 2, 3, 4]
    _register_as_version_one(con, ["f1", "f2"])
    con.close()

    history = AcquisitionHistory(path)
    # the catalog moved f1's LiDAR file: the history neither knows nor minds
    assert history.register_frame_arrays(["f1", "f2", "f3"], ["s", "s", "s"]).added == 1
    con = duckdb.connect(str(path))
    columns = [row[0] for row in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'frames' "
                                             "ORDER BY column_index").fetchall()]
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    keys = con.execute("SELECT frame_id, frame_key FROM frames ORDER BY frame_key").fetchall()
    con.close()
    assert columns == ["frame_key", "frame_id", "sequence_id"]
    assert "frame_cameras" not in tables
    assert keys[:2] == [("f1", 0), ("f2", 1)] and keys[2][0] == "f3" and keys[2][1] > 1  # keys kept, new ones after
    assert list(history.unlabeled_pool(with_frame_ids=True).frame_ids) == ["f1", "f2", "f3"]
