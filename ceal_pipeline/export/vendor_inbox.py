"""Label deliveries coming back from the vendor, and a simulated vendor for demos.

A delivery is ``<inbox>/delivery-round-NNNN.json``: ``{"round": r, "frame_ids": [...]}``,
the frames of round ``r``'s export whose annotations have arrived. The
``labeled_set`` asset reads the inbox and records those frames as labeled.

With a real vendor the annotations land in the frame source and the delivery
file says which ones are new. In simulations (the demo, the round benchmark,
tests) the source already holds ground truth for every frame but the pipeline
is only allowed to use it for frames that were delivered:
:func:`simulate_vendor` answers every export in the outbox at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ceal_pipeline.export.file_drop import list_exports, read_vendor_export
from ceal_pipeline.frames.records import validate_frame_id

_DELIVERY_GLOB = "delivery-round-[0-9]*.json"


@dataclass(frozen=True)
class LabelDelivery:
    """The frames of one round's export whose labels the vendor delivered."""

    round_index: int
    frame_ids: tuple[str, ...]
    path: Path


def delivery_path(inbox: str | os.PathLike, round_index: int) -> Path:
    return Path(inbox) / f"delivery-round-{round_index:04d}.json"


def write_label_delivery(inbox: str | os.PathLike, round_index: int, frame_ids: list[str]) -> LabelDelivery:
    """Record (atomically) that the labels of ``frame_ids`` from round ``round_index`` arrived."""
    ids = tuple(validate_frame_id(f) for f in frame_ids)
    path = delivery_path(inbox, round_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"round": round_index, "frame_ids": list(ids)}) + "\n")
    os.replace(tmp, path)
    return LabelDelivery(round_index, ids, path)


@dataclass(frozen=True)
class RejectedDelivery:
    """A delivery file none of which was ingested, and why."""

    path: Path
    reason: str


def _parse_delivery(path: Path) -> LabelDelivery:
    """One delivery file, strictly: the round an int that matches the file name, valid unique frame ids."""
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or set(payload) != {"round", "frame_ids"}:
        raise ValueError("expected exactly {'round': int, 'frame_ids': [...]}")
    round_index = payload["round"]
    if isinstance(round_index, bool) or not isinstance(round_index, int) or round_index < 0:
        raise ValueError(f"round {round_index!r} is not a round number (a non-negative integer)")
    named = int(path.stem.rsplit("-", 1)[1])
    if named != round_index:
        raise ValueError(f"the file name says round {named} but its 'round' field says {round_index}")
    frame_ids = payload["frame_ids"]
    if not isinstance(frame_ids, list) or not frame_ids:
        raise ValueError("'frame_ids' must be a non-empty list of frame ids")
    ids = tuple(validate_frame_id(f) for f in frame_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("'frame_ids' names a frame more than once")
    return LabelDelivery(round_index, ids, path)


def read_label_deliveries(inbox: str | os.PathLike) -> tuple[list[LabelDelivery], list[RejectedDelivery]]:
    """``(deliveries, rejected)`` in ``inbox``, oldest round first.

    A file that is not a well-formed delivery is rejected whole, with the reason;
    the caller reports it and ingests nothing of it. Whether its frames belong
    to that round's export is the caller's check (it needs the history).
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        return [], []
    deliveries, rejected = [], []
    for path in sorted(inbox.glob(_DELIVERY_GLOB)):
        try:
            deliveries.append(_parse_delivery(path))
        except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
            rejected.append(RejectedDelivery(path, f"not a label delivery ({exc}): fix or remove the file"))
    return deliveries, rejected


def check_against_export(delivery: LabelDelivery, exported: set[str] | None) -> RejectedDelivery | None:
    """Why ``delivery`` may not be used given its round's exported frames (``None``:
    no export recorded for that round), or ``None`` when every frame was exported."""
    if exported is None:
        return RejectedDelivery(delivery.path, f"round {delivery.round_index} has no recorded export: a delivery "
                                "may only label frames the vendor was sent; check the round number")
    foreign = sorted(set(delivery.frame_ids) - exported)
    if foreign:
        return RejectedDelivery(delivery.path, f"{len(foreign)} frames were not in round {delivery.round_index}'s "
                                f"export (e.g. {', '.join(foreign[:5])}); nothing of the file was used: ask the "
                                "vendor to correct it")
    return None


def simulate_vendor(outbox: str | os.PathLike, inbox: str | os.PathLike) -> list[LabelDelivery]:
    """Answer every verified export in ``outbox`` that has no delivery yet; return the new deliveries."""
    delivered = {d.round_index for d in read_label_deliveries(inbox)[0]}
    new = []
    for folder in list_exports(outbox):
        export = read_vendor_export(folder)  # verifies the checksums, as a vendor would
        if export.round_index not in delivered:
            new.append(write_label_delivery(inbox, export.round_index, list(export.frame_ids)))
    return new
