"""A simulated vendor for `ceal demo` and the tests: it labels every export perfectly.

The synthetic source holds ground truth for every frame, so the vendor's answer to
an export is an OpenLABEL delivery of the ground truth of exactly the exported
frames, written into the inbox where a real vendor's files would land; the real
ingest path (:mod:`ceal_pipeline.export.label_ingest`) then reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ceal_pipeline.export.file_drop import list_exports, read_vendor_export
from ceal_pipeline.export.vendor_inbox import delivery_folder, ground_truth_labels, write_label_delivery
from ceal_pipeline.frames.records import FrameRecord


def simulate_vendor(outbox: str | os.PathLike, inbox: str | os.PathLike,
                    ground_truth: Callable[[list[str]], Sequence[FrameRecord]]) -> list[Path]:
    """Answer every export in ``outbox`` that has no delivery yet.

    Args:
        outbox: the exporter's outbox (one ``round-NNNN`` folder per export; the
            checksums are verified, as a vendor would).
        inbox: the exporter's inbox, where the delivery is written.
        ground_truth: frame ids -> their annotated records (e.g. the catalog's
            ``records``).

    Returns:
        The new delivery files, one per export answered.
    """
    new = []
    for folder in list_exports(outbox):
        export = read_vendor_export(folder)
        answer = delivery_folder(inbox, export.round_index)
        if answer.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in answer.iterdir()):
            continue
        labels = ground_truth_labels(ground_truth(list(export.frame_ids)))
        new.append(write_label_delivery(inbox, export.round_index, labels))
    return new
