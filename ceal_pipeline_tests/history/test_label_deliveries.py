"""Delivered labels in the history: boxes with provenance, and what a delivery may not do."""

from __future__ import annotations

import numpy as np
import pytest

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.history import DeliveryRejected, UnknownFrames
from ceal_pipeline.core.history.schema import MIGRATIONS

from .conftest import frame_ids, rejected_deliveries, table_counts

EXPORTED = frame_ids()[:4]


@pytest.fixture
def exported(history):
    """Round 0 exported the first four frames."""
    history.start_round(0, seed=1, parameters={})
    history.save_selection(0, EXPORTED, np.arange(4.0))
    history.record_export(0, "/outbox/round-0000", EXPORTED)
    return history


def boxes(n: int, shift: float = 0.0) -> np.ndarray:
    return np.asarray([[i + shift, 2.0, -1.8, 4.0, 1.9, 1.5, 0.1 * i] for i in range(n)], dtype=np.float64)


def deliver(history, ids, *, sha="a" * 64, round=0, shift=0.0, path="/inbox/round-0000/acme.json"):
    return history.ingest_delivery(
        round, path=path, sha256=sha, format="openlabel", vendor="acme", frame_ids=ids,
        boxes=[Boxes(boxes(2, shift)) for _ in ids], class_names=[("car", "truck") for _ in ids])


def test_migration_4_adds_the_delivery_tables():
    assert MIGRATIONS[3].version == 4 and "label deliveries" in MIGRATIONS[3].description


def test_a_delivery_is_stored_as_boxes_with_round_file_vendor_and_time_and_labels_from_the_next_round(exported):
    result = deliver(exported, EXPORTED[:3])

    assert (result.frames_added, result.boxes_added, result.frames_unchanged) == (3, 6, 0)
    [row] = exported.deliveries()
    assert (row["round"], row["path"], row["format"], row["vendor"], row["n_frames"], row["n_boxes"]) == (
        0, "/inbox/round-0000/acme.json", "openlabel", "acme", 3, 6)
    assert row["ingested_at"] is not None
    labels = exported.delivered_labels(EXPORTED)
    assert set(labels) == set(EXPORTED[:3])  # the fourth frame was not delivered
    assert labels[EXPORTED[0]][0] == Boxes(boxes(2))
    assert labels[EXPORTED[0]][1] == ("car", "truck")
    assert exported.label_rounds() == dict.fromkeys(EXPORTED[:3], 1)


def test_the_same_delivery_twice_is_a_no_op(exported):
    deliver(exported, EXPORTED)
    before = table_counts(exported)

    again = deliver(exported, EXPORTED)

    assert again.already_ingested and again.frames_added == 0
    assert table_counts(exported) == before


def test_a_second_file_repeating_delivered_frames_with_the_same_boxes_adds_only_the_new_frames(exported):
    deliver(exported, EXPORTED[:2])

    result = deliver(exported, EXPORTED[1:3], sha="b" * 64)

    assert (result.frames_added, result.frames_unchanged) == (1, 1)
    assert set(exported.delivered_labels(EXPORTED)) == set(EXPORTED[:3])


def test_a_frame_delivered_again_with_other_boxes_refuses_the_whole_file_and_changes_nothing(exported):
    deliver(exported, EXPORTED[:2])
    before = table_counts(exported)

    with pytest.raises(DeliveryRejected, match=rf"{EXPORTED[1]}.*delivered before with other boxes"):
        deliver(exported, EXPORTED[1:4], sha="c" * 64, shift=0.5)

    assert table_counts(exported) == before
    assert exported.delivered_labels([EXPORTED[1]])[EXPORTED[1]][0] == Boxes(boxes(2))


def test_frames_never_exported_in_that_round_refuse_the_whole_file(exported):
    before = table_counts(exported)
    outsider = frame_ids()[10]

    with pytest.raises(DeliveryRejected, match=rf"{outsider}\).*never exported in round 0"):
        deliver(exported, [EXPORTED[0], outsider])
    with pytest.raises(DeliveryRejected, match="round 3 has no recorded export"):
        deliver(exported, EXPORTED, round=3)
    with pytest.raises(UnknownFrames, match="not-a-frame"):
        deliver(exported, [EXPORTED[0], "not-a-frame"])

    assert table_counts(exported) == before


def test_refused_files_are_recorded_once_with_their_reason(exported):
    assert exported.record_rejected_delivery("/inbox/round-0000/bad.json", "d" * 64, 0, "NaN box")
    assert not exported.record_rejected_delivery("/inbox/round-0000/bad.json", "d" * 64, 0, "NaN box")
    assert rejected_deliveries(exported) == [("/inbox/round-0000/bad.json", 0, "NaN box")]


def test_a_frame_delivered_with_no_boxes_counts_as_labeled_and_empty(exported):
    result = exported.ingest_delivery(0, path="p", sha256="e" * 64, format="mmdet3d", vendor="acme",
                                      frame_ids=[EXPORTED[0]], boxes=[Boxes(np.zeros((0, 7)))], class_names=[()])

    assert result.frames_added == 1 and result.boxes_added == 0
    got, names = exported.delivered_labels([EXPORTED[0]])[EXPORTED[0]]
    assert len(got) == 0 and names == ()
    assert exported.delivered_frame_ids() == {EXPORTED[0]}
