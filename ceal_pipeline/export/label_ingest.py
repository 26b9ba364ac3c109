"""Delivered labels into the history: the one path `labeled_set` and `ceal labels ingest` share.

A delivery is read strictly (:mod:`.vendor_inbox`), then checked against the
history and stored with its provenance in one transaction
(:meth:`~ceal_pipeline.core.history.AcquisitionHistory.ingest_delivery`). A
refused file is recorded in the history's ``rejected_deliveries`` with the
reason and reported; nothing of it is used and nothing ingested before changes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.history import AcquisitionHistory, DeliveryResult, HistoryError
from ceal_pipeline.export.vendor_inbox import LabelDelivery, RejectedDelivery, read_label_deliveries


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


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def record_rejection(history: AcquisitionHistory, rejection: RejectedDelivery, round_index: int | None) -> None:
    history.record_rejected_delivery(str(rejection.path), _sha256(Path(rejection.path)), round_index,
                                     rejection.reason)


def ingest_deliveries(
    history: AcquisitionHistory, deliveries: list[LabelDelivery], rejected: list[RejectedDelivery] = ()
) -> tuple[list[IngestedDelivery], list[RejectedDelivery]]:
    """Ingest each delivery on its own (one refused file does not stop the others); return
    ``(ingested, rejected)`` with every rejection (those given and new ones) recorded."""
    rejected = list(rejected)
    for rejection in rejected:
        record_rejection(history, rejection, None)
    ingested = []
    for delivery in deliveries:
        try:
            ingested.append(IngestedDelivery(delivery, ingest_delivery(history, delivery)))
        except HistoryError as exc:
            rejection = RejectedDelivery(delivery.path, f"{exc}")
            record_rejection(history, rejection, delivery.round_index)
            rejected.append(rejection)
    return ingested, rejected


def ingest_inbox(history: AcquisitionHistory, inbox: str | os.PathLike):
    """Read every delivery in ``inbox`` and ingest it: ``(ingested, rejected)``."""
    deliveries, rejected = read_label_deliveries(inbox)
    return ingest_deliveries(history, deliveries, rejected)
