"""How a labeling vendor is plugged in: deliver an export, poll for deliveries.

The pipeline itself only ever writes the outbox and reads the inbox (files).
A vendor with an API (Kognic, Segments.ai, Scale, a CVAT server) is connected
by an adapter that moves files between those folders and the vendor:
:meth:`VendorAdapter.deliver_export` sends one round's drop (its tasks keyed by
the frame id as external id), :meth:`VendorAdapter.poll_deliveries` fetches
finished labels into ``<inbox>/round-NNNN/`` in OpenLABEL or mmdet3d format.
Both must be idempotent: delivering a round twice creates no second batch of
tasks (the vendor de-duplicates by external id, or the adapter remembers), and
a delivery fetched twice is written to the same file name with the same bytes
(the ingest then finds it already ingested). :class:`FileDropAdapter` is the
built-in one: the vendor reads the outbox and writes the inbox itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ceal_pipeline.export.file_drop import VendorExport
from ceal_pipeline.export.vendor_inbox import delivery_folder


@runtime_checkable
class VendorAdapter(Protocol):
    """The two things a vendor integration does (see the module docstring)."""

    def deliver_export(self, export: VendorExport) -> None:
        """Hand round ``export.round_index``'s drop (``export.folder``) to the vendor, once."""

    def poll_deliveries(self, inbox: str | os.PathLike) -> list[Path]:
        """Write the vendor's finished labels into ``inbox/round-NNNN/``; return the files written now."""


class FileDropAdapter:
    """The vendor syncs the outbox and writes its answers into the inbox itself: nothing to send
    or fetch. ``poll_deliveries`` lists the delivery files present, for symmetry with API adapters."""

    def deliver_export(self, export: VendorExport) -> None:
        if not export.manifest_path.is_file():
            raise FileNotFoundError(f"{export.folder}: the drop has no manifest; export the round first")

    def poll_deliveries(self, inbox: str | os.PathLike) -> list[Path]:
        inbox = Path(inbox)
        if not inbox.is_dir():
            return []
        return sorted(p for folder in inbox.glob("round-[0-9]*") if folder.is_dir()
                      for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def round_inbox(inbox: str | os.PathLike, round_index: int) -> Path:
    """Where an adapter writes the labels answering ``round_index`` (created if needed)."""
    folder = delivery_folder(inbox, round_index)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
