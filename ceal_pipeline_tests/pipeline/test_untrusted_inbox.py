"""The label inbox is written by someone else: nothing in it stops a round, a kill leaves
nothing behind that a later run trips over, and labeled frames that leave the source can go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.atomic_files import STALE_AFTER_S, remove_stale_temporaries
from ceal_pipeline.core.history import AcquisitionHistory
from ceal_pipeline.export.label_ingest import ingest_inbox
from ceal_pipeline.export.vendor_inbox import read_label_deliveries, round_of_folder
from ceal_pipeline_tests.badinput.corpus import EXPORTED, _good_delivery
from ceal_pipeline_tests.history.conftest import rejected_deliveries

IDS = EXPORTED + ["seq1-frame009"]


def _history(tmp_path, *, exported: bool = True) -> AcquisitionHistory:
    history = AcquisitionHistory(tmp_path / "history.duckdb", threads=1)
    history.register_frame_arrays(IDS, [i.split("-")[0] for i in IDS])
    history.start_round(1, seed=1, parameters={})
    history.save_selection(1, EXPORTED, np.arange(float(len(EXPORTED))))
    if exported:
        history.record_export(1, str(tmp_path / "outbox" / "round-0001"), EXPORTED)
    return history


def _deliver(inbox, folder="round-0001", name="acme.json", content=None):
    (inbox / folder).mkdir(parents=True, exist_ok=True)
    (inbox / folder / name).write_text(json.dumps(content or _good_delivery()))
    return inbox / folder / name


@pytest.mark.parametrize("name, expected", [
    ("round-0001", (1, None)), ("round-12345", (12345, None)),
    ("round-1", (None, "name it round-0001/")), ("round-00001", (None, "name it round-0001/")),
    ("round-2147483648", (None, "out of range")), ("round-100000000000000000000", (None, "out of range")),
    ("round-٣", (None, "not a round folder")), ("Round-0001", (None, "not a round folder")),
])
def test_a_round_folder_name_is_read_exactly_or_refused_with_the_fix(name, expected):
    round_index, problem = round_of_folder(name)
    assert round_index == expected[0]
    assert (problem is None) if expected[1] is None else (expected[1] in problem)


def test_a_poisoned_inbox_rejects_each_bad_entry_once_and_still_ingests_the_good_delivery(tmp_path):
    history = _history(tmp_path)
    inbox = tmp_path / "inbox"
    _deliver(inbox)
    _deliver(inbox, folder="round-2147483648")
    _deliver(inbox, folder="round-1")
    os.symlink("/etc", inbox / "round-0002")
    os.mkfifo(inbox / "round-0001" / "pipe.json")

    for _ in range(2):  # every round reads the inbox again
        ingested, rejected = ingest_inbox(history, inbox)

    assert sum(d.result.frames_added for d in ingested) == 0  # the second pass: already ingested
    assert sorted(history.delivered_frame_ids()) == sorted(EXPORTED)
    assert sorted(os.path.relpath(r.path, inbox) for r in rejected) == [
        "round-0001/pipe.json", "round-0002", "round-1", "round-2147483648"]
    recorded = rejected_deliveries(history)
    assert len(recorded) == 4 and all(str(path).startswith(str(inbox)) for path, _, _ in recorded)


def test_a_delivery_whose_round_export_is_not_recorded_yet_waits_instead_of_being_rejected(tmp_path):
    """The kill between writing the outbox and recording the export: the vendor may answer
    the drop before the next run records it; the answer must not be refused for good."""
    history = _history(tmp_path, exported=False)
    inbox = tmp_path / "inbox"
    _deliver(inbox)

    ingested, rejected = ingest_inbox(history, inbox)
    assert ingested == [] and [r.deferred for r in rejected] == [True]
    assert rejected_deliveries(history) == []

    history.record_export(1, str(tmp_path / "outbox" / "round-0001"), EXPORTED)  # the next vendor_export
    ingested, rejected = ingest_inbox(history, inbox)
    assert rejected == [] and ingested[0].result.frames_added == len(EXPORTED)
    assert rejected_deliveries(history) == []


def test_a_delivery_for_a_round_that_selected_nothing_is_still_rejected(tmp_path):
    history = _history(tmp_path)
    inbox = tmp_path / "inbox"
    _deliver(inbox, folder="round-0005")
    _, rejected = ingest_inbox(history, inbox)
    assert not rejected[0].deferred and "no recorded export" in rejected[0].reason


def test_a_killed_writers_temporary_file_is_removed_by_the_next_read_and_a_live_ones_is_kept(tmp_path):
    inbox = tmp_path / "inbox"
    _deliver(inbox)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = inbox / "round-0001" / f".acme2.json.{dead}.tmp"
    stale.write_text("{")
    old = time.time() - STALE_AFTER_S - 1
    os.utime(stale, (old, old))
    fresh_dead = inbox / "round-0001" / f".acme3.json.{dead}.tmp"  # a writer elsewhere may still be at work
    fresh_dead.write_text("{")
    live = inbox / "round-0001" / f".acme4.json.{os.getpid()}.tmp"
    live.write_text("{")
    os.utime(live, (old, old))

    deliveries, rejected = read_label_deliveries(inbox)

    assert [d.path.name for d in deliveries] == ["acme.json"] and rejected == []
    assert not stale.exists() and fresh_dead.exists() and live.exists()


@pytest.mark.parametrize("name", [".manifest.json.{pid}.tmp", ".pool.parquet.{pid}.tmp", ".s003.parquet.{pid}.tmp"])
def test_stale_temporary_files_of_every_writer_match_the_cleanup(tmp_path, name):
    path = tmp_path / name.format(pid=2**22 + 12345)  # above Linux's pid_max default: never running
    path.write_text("partial")
    os.utime(path, (0, 0))
    (tmp_path / "pool.parquet").write_text("kept")
    assert remove_stale_temporaries(tmp_path) == [path]
    assert (tmp_path / "pool.parquet").exists()


def test_publishing_a_pool_removes_a_killed_publications_temporary_file(tmp_path):
    from ceal_pipeline.core.history.shards import ShardExchange

    exchange = ShardExchange(tmp_path)
    exchange.round_dir(2).mkdir(parents=True)
    left = exchange.round_dir(2) / f".pool.parquet.{2**22 + 7}.tmp"
    left.write_bytes(b"PAR1")
    os.utime(left, (0, 0))
    exchange.publish_pool(2, np.array(["a", "b"], dtype=object), np.array([0, 0]), 1, "m1")
    assert not left.exists() and exchange.published_pool(2).frames == 2


def test_a_catalog_ingest_removes_a_killed_commits_manifest_temporary_file(tmp_path):
    from ceal_pipeline.catalog import FrameCatalog
    from ceal_pipeline_tests.badinput.corpus import write_info_dataset

    write_info_dataset(tmp_path / "source")
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", tmp_path / "source", lidar_prefix="lidar", camera_prefix="camera", workers=1)
    left = tmp_path / "catalog" / f".manifest.json.{2**22 + 3}.tmp"
    left.write_text("{")
    catalog.ingest("mmdet3d", tmp_path / "source", lidar_prefix="lidar", camera_prefix="camera", workers=1)
    assert not left.exists() and len(catalog.frame_ids()) == 3


def test_a_retired_labeled_frame_leaves_the_labeled_set_and_every_pool_and_its_history_stays(tmp_path):
    history = _history(tmp_path)
    _deliver(tmp_path / "inbox")
    ingest_inbox(history, tmp_path / "inbox")
    gone = EXPORTED[0]

    assert history.retire_labeled_frames([gone], reason="drive deleted") == 1
    assert history.retire_labeled_frames([gone], reason="drive deleted") == 0

    assert gone not in set(history.labeled_frames())
    assert [q.reason for q in history.quarantined_frames() if q.frame_id == gone] == ["retired: drive deleted"]
    assert gone in history.delivered_frame_ids()  # the record of what was bought stays
    with pytest.raises(ValueError, match="never labeled"):
        history.retire_labeled_frames(["seq1-frame009"], reason="x")


def test_a_poisoned_inbox_does_not_stop_the_next_rounds_and_its_good_delivery_is_used(defs, instance, resources):
    from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
    from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
    from ceal_pipeline.export import read_vendor_export, write_label_delivery
    from ceal_pipeline.export.vendor_inbox import ground_truth_labels

    configs = {"candidate_pool": CandidatePoolConfig(shard_size=24, pool_count=20, k=6, per_sequence_cap=3),
               "selected_batch": SelectionConfig(k=6, per_sequence_cap=3)}
    first = run_acquisition_round(defs, instance, configs)
    exported = list(read_vendor_export(first.export_folder).frame_ids)
    inbox = Path(resources["exporter"].inbox)
    good = write_label_delivery(inbox, 0, ground_truth_labels(resources["frame_source"].catalog().records(exported)))
    for name in ("round-100000000000000000000", "round-2147483648", "round-1"):
        (inbox / name).mkdir()
        (inbox / name / "acme.json").write_text(json.dumps(_good_delivery()))
    os.symlink("/etc", inbox / "round-0003")
    os.mkfifo(inbox / "round-0000" / "pipe.json")
    (inbox / "round-0000" / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (inbox / "round-0000" / "huge.pkl").write_bytes(b"cnumpy\nndarray\n(I1000000000000\ntR.")

    second = run_acquisition_round(defs, instance, configs)
    third = run_acquisition_round(defs, instance, configs)

    assert (second.round_index, third.round_index) == (1, 2)
    assert second.labeled_frames == first.labeled_frames + len(exported)  # the good delivery counted
    history = resources["history"].open()
    assert {d["path"] for d in history.deliveries()} == {str(good)}
    recorded = sorted(os.path.relpath(path, inbox) for path, _, _ in rejected_deliveries(history))
    assert recorded == ["round-0000/deep.json", "round-0000/huge.pkl", "round-0000/pipe.json",
                        "round-0003", "round-1", "round-100000000000000000000", "round-2147483648"]
