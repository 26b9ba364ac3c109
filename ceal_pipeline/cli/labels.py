"""`ceal labels ingest`: take a vendor's delivery in, as boxes.

The file (or every file of a folder) is copied into the label inbox under
``round-NNNN/`` (where the ``labeled_set`` asset reads deliveries too) and
ingested into the acquisition history at once: boxes converted to the
pipeline's convention and stored with their provenance (round, file, vendor,
time). A refused file is reported with the reason and recorded; nothing of it
is used. Ingesting the same file again is a no-op. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.export.vendor_inbox import DELIVERY_FORMATS, inbox_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    ingest = actions.add_parser("ingest", help="ingest a vendor delivery (OpenLABEL or mmdet3d) as boxes")
    ingest.add_argument("path", help="a delivery file, or a folder of them")
    ingest.add_argument("--format", choices=DELIVERY_FORMATS, required=True, dest="fmt",
                        help="the delivery's format")
    ingest.add_argument("--round", type=int, required=True, help="the round whose export the delivery answers")
    ingest.add_argument("--vendor", default=None, help="who delivered it (default: the file's annotator)")
    ingest.add_argument("--history", default=None, help="the DuckDB history (default: $CEAL_HISTORY_PATH)")
    ingest.add_argument("--inbox", default=None, help="the label inbox (default: $CEAL_INBOX_DIR)")


def _into_inbox(path: Path, folder: Path, fmt: str) -> Path:
    """``path`` copied (atomically) into the inbox folder; an existing copy must be identical."""
    target = folder / inbox_name(path.name, fmt)
    if target.resolve() == path.resolve():
        return target
    if target.exists():
        if target.read_bytes() != path.read_bytes():
            raise SystemExit(f"ceal labels ingest: {target} already holds another delivery of that name; "
                             "rename the new file")
        return target
    atomic_write_bytes(target, path.read_bytes())
    return target


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.configuration import project_config
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.export import MalformedDelivery, InvalidDeliveredBoxes, RejectedDelivery
    from ceal_pipeline.export.label_ingest import ingest_deliveries
    from ceal_pipeline.export.vendor_inbox import delivery_folder, read_delivery

    source = Path(args.path)
    if not source.exists():
        raise SystemExit(f"ceal labels ingest: {source} does not exist")
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if source.is_dir() else [source]
    storage = project_config().storage
    history = AcquisitionHistory(args.history or storage.history)
    folder = delivery_folder(args.inbox or storage.inbox, args.round)
    deliveries, rejected = [], []
    for file in files:
        copy = _into_inbox(file, folder, args.fmt)
        try:
            deliveries.append(read_delivery(copy, args.round, args.fmt, args.vendor))
        except (MalformedDelivery, InvalidDeliveredBoxes) as exc:
            rejected.append(RejectedDelivery(copy, f"{exc}; nothing of the file was used"))
    ingested, rejected = ingest_deliveries(history, deliveries, rejected)
    print(json.dumps({
        "round": args.round,
        "files": len(files),
        "frames_added": sum(d.result.frames_added for d in ingested),
        "boxes_added": sum(d.result.boxes_added for d in ingested),
        "already_ingested": sum(d.result.already_ingested for d in ingested),
        "rejected": {str(r.path): r.reason for r in rejected},
    }))
    return 1 if rejected else 0
