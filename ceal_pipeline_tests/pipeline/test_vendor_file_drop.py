"""The vendor file drop: atomic, checksummed, exactly one export per round (no Dagster needed)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceal_pipeline.export import (
    CorruptExport,
    ExportConflict,
    ExportedFrame,
    list_exports,
    read_vendor_export,
    write_vendor_export,
)
from ceal_pipeline.export.file_drop import CSV_NAME, JSONL_NAME
from ceal_pipeline.frames.records import InvalidFrameId

ROWS = [ExportedFrame("seq01-000004", "seq01", 2.5), ExportedFrame("seq02-000017", "seq02", 1.25)]


def test_export_writes_csv_jsonl_and_a_manifest_with_each_files_sha256(tmp_path):
    export = write_vendor_export(tmp_path, 3, "tiny-abc123", ROWS)

    assert export.created and export.folder == tmp_path / "round-0003"
    manifest = json.loads(export.manifest_path.read_text())
    assert manifest["round"] == 3 and manifest["model_version"] == "tiny-abc123" and manifest["count"] == 2
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((export.folder / name).read_bytes()).hexdigest() == digest
    with open(export.folder / CSV_NAME, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["frame_id"] for r in rows] == ["seq01-000004", "seq02-000017"]
    assert [r["rank"] for r in rows] == ["1", "2"]
    lines = [json.loads(line) for line in (export.folder / JSONL_NAME).read_text().splitlines()]
    assert [(r["frame_id"], r["score"]) for r in lines] == [("seq01-000004", 2.5), ("seq02-000017", 1.25)]


def test_exporting_the_same_round_again_returns_the_existing_drop_unchanged(tmp_path):
    first = write_vendor_export(tmp_path, 0, "v1", ROWS)
    before = {p.name: p.stat().st_mtime_ns for p in first.folder.iterdir()}

    again = write_vendor_export(tmp_path, 0, "v1", ROWS)

    assert not again.created and again.frame_ids == first.frame_ids
    assert {p.name: p.stat().st_mtime_ns for p in again.folder.iterdir()} == before
    assert list_exports(tmp_path) == [first.folder]


def test_a_round_is_never_re_exported_with_other_frames(tmp_path):
    write_vendor_export(tmp_path, 0, "v1", ROWS)
    with pytest.raises(ExportConflict, match="round 0 was already exported"):
        write_vendor_export(tmp_path, 0, "v1", ROWS[:1])


def test_a_killed_export_leaves_no_round_folder_and_the_next_export_cleans_up(tmp_path):
    stale = tmp_path / ".staging-round-0001-abcd"
    stale.mkdir()
    (stale / "selected_frames.csv").write_text("half a file")
    assert list_exports(tmp_path) == []  # a vendor never sees a half-written drop

    write_vendor_export(tmp_path, 1, "v1", ROWS)

    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["round-0001"]


def test_a_drop_modified_after_export_fails_verification_naming_the_file(tmp_path):
    export = write_vendor_export(tmp_path, 2, "v1", ROWS)
    with open(export.folder / CSV_NAME, "a") as handle:
        handle.write("seq09-000001,seq09,9.0,3\n")
    with pytest.raises(CorruptExport, match="selected_frames.csv"):
        read_vendor_export(export.folder)


@pytest.mark.parametrize("bad", ["../escape", "a b", "", "x/y"])
def test_unsafe_frame_ids_are_refused_before_anything_is_written(tmp_path, bad):
    with pytest.raises(InvalidFrameId):
        write_vendor_export(tmp_path, 0, "v1", [ExportedFrame(bad)])
    assert not any(tmp_path.iterdir())


def test_duplicated_and_empty_selections_are_refused(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        write_vendor_export(tmp_path, 0, "v1", [ROWS[0], ROWS[0]])
    with pytest.raises(ValueError, match="empty"):
        write_vendor_export(tmp_path, 0, "v1", [])


frame_ids = st.lists(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:+\-]{0,30}", fullmatch=True), min_size=1, max_size=40, unique=True
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=frame_ids, scores=st.lists(st.floats(-1e6, 1e6), min_size=40, max_size=40))
def test_any_valid_selection_round_trips_through_the_drop_in_order(tmp_path_factory, ids, scores):
    outbox = tmp_path_factory.mktemp("outbox")
    rows = [ExportedFrame(f, "seq", s) for f, s in zip(ids, scores)]

    written = write_vendor_export(outbox, 7, "v1", rows)
    read = read_vendor_export(written.folder)

    assert read.frame_ids == tuple(ids) and read.round_index == 7
    lines = [json.loads(line) for line in (written.folder / JSONL_NAME).read_text().splitlines()]
    assert [line["score"] for line in lines] == [float(s) for s in scores[: len(ids)]]
    assert os.listdir(outbox) == ["round-0007"]


def test_an_export_folder_is_readable_by_the_vendors_sync_user(tmp_path):
    export = write_vendor_export(tmp_path, 0, "m", [ExportedFrame("f1", "seq", 1.0)])
    assert export.folder.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("sequence_id", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd"])
def test_a_text_field_starting_with_a_formula_character_is_written_as_text(tmp_path, sequence_id):
    export = write_vendor_export(tmp_path, 0, "m", [ExportedFrame("f1", sequence_id, -25.5)])
    rows = list(csv.reader(io.StringIO((export.folder / CSV_NAME).read_text())))
    assert rows[1][1] == "'" + sequence_id and rows[1][2] == "-25.5"  # the number stays a number
    assert json.loads((export.folder / JSONL_NAME).read_text())["sequence_id"] == sequence_id  # JSON is not a spreadsheet
