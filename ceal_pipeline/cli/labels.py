"""`ceal labels ingest`: take a vendor's delivery in, as boxes; `ceal labels retire`: let
labeled frames that left the source go.

``ingest``: the file (or every file of a folder) is read and checked first;
only then is it copied into the label inbox under ``round-NNNN/`` (where the
``labeled_set`` asset reads deliveries too) and ingested into the acquisition
history: boxes converted to the pipeline's convention and stored with their
provenance (round, file, vendor, time). A refused file is reported with the
reason and recorded, never copied; nothing of it is used. Ingesting the same
file again is a no-op. Prints one JSON line.

``retire``: a labeled frame removed from the source (deleted, moved, its files
lost) stops every later round ("labeled frames are no longer in the frame
catalog"). Retiring it records the reason in the history's quarantine, takes it
out of the labeled set (its label events and delivered boxes stay, as history)
and keeps it out of every pool; the rounds go on without it (docs/VENDOR.md).

Both wait out a history that a running round holds open, as the assets do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.cli.arguments import existing_history, open_history, plain_text, round_index, waiting_out_busy_history
from ceal_pipeline.export.vendor_inbox import DELIVERY_FORMATS, inbox_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    ingest = actions.add_parser("ingest", help="ingest a vendor delivery (OpenLABEL or mmdet3d) as boxes")
    ingest.add_argument("path", type=plain_text, help="a delivery file, or a folder of them")
    ingest.add_argument("--format", choices=DELIVERY_FORMATS, required=True, dest="fmt",
                        help="the delivery's format")
    ingest.add_argument("--round", type=round_index, required=True,
                        help="the round whose export the delivery answers")
    ingest.add_argument("--vendor", default=None, help="who delivered it (default: the file's annotator)")
    ingest.add_argument("--history", type=plain_text, default=None,
                        help="the DuckDB history (default: storage.history of ceal.yaml; $CEAL_HISTORY_PATH "
                        "overrides it); it must exist")
    ingest.add_argument("--inbox", type=plain_text, default=None,
                        help="the label inbox (default: storage.inbox of ceal.yaml; $CEAL_INBOX overrides it)")
    retire = actions.add_parser("retire", help="take labeled frames that left the source out of the labeled set")
    which = retire.add_mutually_exclusive_group(required=True)
    which.add_argument("--frame", action="append", dest="frames", type=plain_text,
                       help="a labeled frame id to retire (repeatable)")
    which.add_argument("--missing-from-source", action="store_true",
                       help="every labeled frame that is no longer in the frame catalog")
    retire.add_argument("--reason", required=True, help="why they left the source (recorded)")
    retire.add_argument("--history", type=plain_text, default=None,
                        help="the DuckDB history (default: storage.history of the project configuration)")


def _into_inbox(path: Path, folder: Path, fmt: str) -> Path:
    """``path`` copied (atomically) into the inbox folder; an existing copy must be identical."""
    target = folder / inbox_name(path.name, fmt)
    if target.resolve() == path.resolve():
        return target
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise SystemExit(f"ceal labels ingest: {target} exists and is not a plain file; remove it first")
    if target.exists():
        if target.read_bytes() != path.read_bytes():
            raise SystemExit(f"ceal labels ingest: {target} already holds another delivery of that name; "
                             "rename the new file")
        return target
    atomic_write_bytes(target, path.read_bytes())
    return target


def _delivery_files(source: Path) -> list[Path]:
    if not source.exists():
        raise SystemExit(f"ceal labels ingest: {source} does not exist")
    if not source.is_dir():
        return [source]
    return sorted(p for p in source.iterdir() if not p.name.startswith("."))


def run(args: argparse.Namespace) -> int:
    return _retire(args) if args.action == "retire" else _ingest(args)


def _ingest(args: argparse.Namespace) -> int:
    from ceal_pipeline.configuration import load_project_config
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.export import InvalidDeliveredBoxes, MalformedDelivery, RejectedDelivery
    from ceal_pipeline.export.label_ingest import ingest_deliveries
    from ceal_pipeline.export.vendor_inbox import delivery_folder, read_delivery, sha256_if_small

    # Everything is checked before anything is copied or written.
    files = _delivery_files(Path(args.path).expanduser().resolve())
    storage = load_project_config().storage if args.history is None or args.inbox is None else None
    history_path = existing_history(args.history or storage.history, "labels ingest")
    folder = delivery_folder(args.inbox or storage.inbox, args.round)
    if folder.exists() and (folder.is_symlink() or not folder.is_dir()):
        raise SystemExit(f"ceal labels ingest: {folder} is not a folder; remove it (the inbox's round folders "
                         "are plain folders)")
    deliveries, rejected = [], []
    for file in files:
        try:
            deliveries.append(read_delivery(file, args.round, args.fmt, args.vendor))
        except (MalformedDelivery, InvalidDeliveredBoxes) as exc:
            rejected.append(RejectedDelivery(file, f"{exc}; nothing of the file was used nor copied",
                                             sha256_if_small(file)))
    deliveries = [dataclasses.replace(d, path=_into_inbox(d.path, folder, args.fmt)) for d in deliveries]
    history = waiting_out_busy_history(lambda: AcquisitionHistory(history_path), "labels ingest")
    ingested, rejected = waiting_out_busy_history(lambda: ingest_deliveries(history, deliveries, rejected),
                                                  "labels ingest")
    print(json.dumps({
        "round": args.round,
        "files": len(files),
        "frames_added": sum(d.result.frames_added for d in ingested),
        "boxes_added": sum(d.result.boxes_added for d in ingested),
        "already_ingested": sum(d.result.already_ingested for d in ingested),
        "rejected": {str(r.path): r.reason for r in rejected},
    }))
    return 1 if rejected else 0


def _retire(args: argparse.Namespace) -> int:
    from ceal_pipeline.core.history.errors import HistoryError

    if not args.reason.strip():
        raise SystemExit("ceal labels retire: --reason is empty; say why the frames left the source (it is recorded)")
    history = open_history(args.history, "labels retire")
    if args.missing_from_source:
        import numpy as np

        from ceal_pipeline.catalog import FrameCatalog
        from ceal_pipeline.configuration import load_project_config

        project = load_project_config()
        labeled = np.asarray(waiting_out_busy_history(history.labeled_frames, "labels retire"), dtype=object)
        present = FrameCatalog(project.storage.catalog).frame_ids().astype(object)
        frames = labeled[~np.isin(labeled, present)].tolist()
        if not frames:
            print(json.dumps({"retired": 0, "frames": [], "reason": args.reason}))
            return 0
    else:
        frames = list(dict.fromkeys(args.frames))
    try:
        retired = waiting_out_busy_history(lambda: history.retire_labeled_frames(frames, reason=args.reason),
                                           "labels retire")
    except HistoryError as exc:
        raise SystemExit(f"ceal labels retire: {exc}") from None
    print(json.dumps({"retired": retired, "frames": [str(f) for f in frames][:20], "reason": args.reason}))
    return 0
