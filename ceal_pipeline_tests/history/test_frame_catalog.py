"""Specifications of the frame catalog in the history: registration, labels, quarantine."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.history import AcquisitionHistory, DuplicateFrames, FrameConflict, UnknownFrames
from ceal_pipeline.frames.records import InvalidFrameId, QuarantinedFrame
from ceal_pipeline_tests.history.conftest import N_FRAMES, frame_ids, provenance, register, table_counts

IDS = frame_ids()


def test_registering_the_same_frames_again_is_a_no_op(history):
    before = table_counts(history)
    result = history.register_frame_arrays(IDS[:5], [i.split("-")[0] for i in IDS[:5]])
    assert (result.added, result.already_registered) == (0, 5)
    assert table_counts(history) == before


def test_new_frames_are_added_beside_known_ones(history):
    result = history.register_frame_arrays([IDS[0], "late-frame"], ["seq0", "late"])
    assert (result.added, result.already_registered) == (1, 1)
    assert history.frame_count() == N_FRAMES + 1
    assert len(history.unlabeled_pool()) == N_FRAMES + 1


def test_a_known_frame_in_another_sequence_is_refused(history):
    before = table_counts(history)
    with pytest.raises(FrameConflict, match=f"already registered in a different sequence.*1 frame \\({IDS[3]}\\)"):
        history.register_frame_arrays([IDS[3]], ["another-sequence"])
    assert table_counts(history) == before


def test_duplicate_ids_in_one_registration_are_refused(tmp_path):
    history = AcquisitionHistory(tmp_path / "h.duckdb")
    with pytest.raises(DuplicateFrames, match="given more than once: 1 frame \\(twice\\)"):
        history.register_frame_arrays(["once", "twice", "twice"], ["s"] * 3)
    assert history.frame_count() == 0


@pytest.mark.parametrize(
    "hostile", ["x'; DROP TABLE frames; --", 'a"b', "../../etc/passwd", "frame\n2", "", "ünïcode"]
)
def test_ids_with_sql_or_path_metacharacters_are_rejected_before_any_write(history, hostile):
    before = table_counts(history)
    with pytest.raises(InvalidFrameId, match="invalid ids"):
        history.register_frame_arrays(["fine-id", hostile], ["s", "s"])
    assert table_counts(history) == before


@settings(max_examples=10, deadline=None)
@given(hostile=st.text(alphabet="'\";-/\\%_()*=x ", min_size=1, max_size=20))
def test_ids_are_data_everywhere_they_are_looked_up(tmp_path_factory, hostile):
    """Any string is a bound parameter, never SQL: lookups fail cleanly as unknown frames."""
    history = AcquisitionHistory(tmp_path_factory.mktemp("h") / "h.duckdb", threads=1)
    register(history, IDS[:3])
    before = table_counts(history)
    for write in (
        lambda: history.record_scores([hostile], [1.0], round=0, **provenance()),
        lambda: history.add_labels([hostile], round=0),
        lambda: history.prune([hostile], round=0, reason="low"),
        lambda: history.latest_scores([hostile]),
    ):
        with pytest.raises(UnknownFrames):
            write()
    assert table_counts(history) == before
    history.quarantine([QuarantinedFrame(hostile, "unreadable", "/x'.laz")])
    assert history.quarantined_frames()[-1].frame_id == hostile
    con = duckdb.connect(str(history.path))
    assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 3
    con.close()


def test_frames_that_arrive_labeled_are_registered_as_labeled(tmp_path):
    history = AcquisitionHistory(tmp_path / "h.duckdb")
    result = history.register_frame_arrays(["a1", "a2"], ["seq-a"] * 2, labeled=[False, True], label_round=0)
    assert result.added == 2
    assert list(history.labeled_frames()) == ["a2"]
    assert history.label_rounds() == {"a2": 0}


def test_labeled_frames_leave_the_pool_and_relabeling_is_a_no_op(history):
    assert history.add_labels(IDS[:4], round=1, source="vendor") == 4
    assert history.add_labels(IDS[2:6], round=2, source="vendor") == 2
    assert list(history.labeled_frames()) == IDS[:6]
    pool = history.unlabeled_pool(with_frame_ids=True)
    assert list(pool.frame_ids) == IDS[6:]


def test_quarantined_frames_keep_their_reason_and_leave_the_pool(history):
    bad = [QuarantinedFrame(IDS[0], "LAZ file truncated", "/data/lidar/x.laz", "aimotive"),
           QuarantinedFrame("never-registered", "no camera", "/data/cam", "aimotive")]
    assert history.quarantine(bad, round=0) == 2
    assert history.quarantine(bad, round=1) == 0  # recording the same problem again is a no-op
    assert history.quarantined_frames() == bad
    assert IDS[0] not in set(history.unlabeled_pool(with_frame_ids=True).frame_ids)
    assert history.release_readable_frames(IDS[1:]) == []  # the source still cannot read IDS[0]
    assert history.release_readable_frames(IDS) == [IDS[0]]  # its file was fixed: back in the pool
    assert IDS[0] in set(history.unlabeled_pool(with_frame_ids=True).frame_ids)
    assert history.quarantined_frames() == bad  # the record stays as history
    assert history.release_readable_frames(IDS) == []


def test_a_retired_frame_stays_out_of_the_pool_when_the_source_reads_it_again(history):
    history.add_labels(IDS[:2], round=0, source="seed")
    assert history.retire_labeled_frames(IDS[:1], reason="drive deleted") == 1
    assert history.release_readable_frames(IDS) == []
    assert IDS[0] not in set(history.unlabeled_pool(with_frame_ids=True).frame_ids)
