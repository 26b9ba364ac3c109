"""Delivered labels into the history: the one path `labeled_set` and `ceal labels ingest` share.

A delivery is read strictly (:mod:`.vendor_inbox`), then checked against the
history and stored with its provenance in one transaction
(:meth:`~ceal_pipeline.core.history.AcquisitionHistory.ingest_delivery`). A
refused file is recorded in the history's ``rejected_deliveries`` with the
reason and reported; nothing of it is used and nothing ingested before changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.history import AcquisitionHistory, DeliveryResult, HistoryError
from ceal_pipeline.frames.result import printable
from ceal_pipeline.export.vendor_inbox import (LabelDelivery, RejectedDelivery, sha256_if_small,
                                              read_label_deliveries)


@dataclass(frozen=True)
class IngestedDelivery:
    """A delivery file and what ingesting it did."""

    delivery: LabelDelivery
    result: DeliveryResult


def ingest_delivery(history: AcquisitionHistory, delivery: LabelDelivery) -> DeliveryResult:
    """Store one parsed delivery; raises ``HistoryError`` (e.g. ``DeliveryRejected``) naming the file."""
    frame_ids = list(delivery.labels)
    return history.ingest_delivery(
        delivery.round_index, path=str(delivery.path), sha256=delivery.sha256, format=delivery.format,
        vendor=delivery.vendor, frame_ids=frame_ids,
        boxes=[Boxes(delivery.labels[f][0]) for f in frame_ids], class_names=[delivery.labels[f][1] for f in frame_ids],
    )


def record_rejection(history: AcquisitionHistory, rejection: RejectedDelivery, round_index: int | None) -> None:
    if rejection.deferred:
        return  # not refused: read again on the next run
    sha256 = rejection.sha256 if rejection.sha256 is not None else sha256_if_small(Path(rejection.path))
    # the inbox's names are the vendor's: undecodable bytes are shown escaped, not refused by the database
    history.record_rejected_delivery(printable(str(rejection.path)), sha256, round_index, printable(rejection.reason))


def export_pending(history: AcquisitionHistory, round_index: int) -> bool:
    """Whether ``round_index`` has a saved selection but no recorded export yet: its export
    is being written, or a run was killed between writing the outbox and recording it (the
    next ``vendor_export`` records it). A delivery for such a round waits; it is not refused."""
    return history.exported_frames(round_index) is None and len(history.selection(round_index)) > 0


def ingest_deliveries(
    history: AcquisitionHistory, deliveries: list[LabelDelivery], rejected: list[RejectedDelivery] = ()
) -> tuple[list[IngestedDelivery], list[RejectedDelivery]]:
    """Ingest each delivery on its own (one refused file does not stop the others); return
    ``(ingested, rejected)`` with every rejection (those given and new ones) recorded. A
    delivery whose round's export is not recorded yet (:func:`export_pending`) is returned
    among ``rejected`` with ``deferred`` set and is not recorded: the next run reads it again."""
    rejected = list(rejected)
    for rejection in rejected:
        record_rejection(history, rejection, None)
    ingested = []
    pending = {r for r in sorted({d.round_index for d in deliveries}) if export_pending(history, r)}
    for delivery in deliveries:
        if delivery.round_index in pending:
            rejected.append(RejectedDelivery(
                delivery.path, f"round {delivery.round_index} was selected but its export is not recorded yet; the "
                "delivery is read again once vendor_export has run for that round", delivery.sha256, deferred=True))
            continue
        try:
            ingested.append(IngestedDelivery(delivery, ingest_delivery(history, delivery)))
        except HistoryError as exc:
            rejection = RejectedDelivery(delivery.path, f"{exc}", delivery.sha256)
            record_rejection(history, rejection, delivery.round_index)
            rejected.append(rejection)
    return ingested, rejected


def ingest_inbox(history: AcquisitionHistory, inbox: str | os.PathLike):
    """Read every delivery in ``inbox`` and ingest it: ``(ingested, rejected)``."""
    deliveries, rejected = read_label_deliveries(inbox)
    return ingest_deliveries(history, deliveries, rejected)
