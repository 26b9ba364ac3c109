"""`ceal vendor selfcheck`: the vendor round trip on your own data, measured.

Catalogs the source in a scratch folder, exports every annotated frame in the
chosen format, writes the source's ground truth back as a vendor delivery in
that format, ingests it with the pipeline's own ingest and compares. Prints one
JSON line (``frames``, ``boxes``, ``boxes_returned``, ``max_center_error_m``,
``max_size_error_m``, ``max_yaw_error_rad``, ...); exits 1 when a box was lost
or came back more than 1 mm / 1e-4 rad off.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser("selfcheck", help="export, deliver the ground truth back, ingest, compare")
    check.add_argument("--source", choices=("aimotive", "mmdet3d"), required=True, help="the frame source's kind")
    check.add_argument("--root", required=True, help="the dataset root")
    check.add_argument("--info", default=None, help="mmdet3d: the info file, relative to --root")
    check.add_argument("--format", choices=("openlabel", "mmdet3d"), required=True, dest="fmt",
                       help="the exchange format to check")
    check.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    check.add_argument("--json", action="store_true", help="print only the JSON line")


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.export.selfcheck import run_selfcheck

    if not Path(args.root).is_dir():
        raise SystemExit(f"ceal vendor selfcheck: --root {args.root} is not a folder; give the dataset root")

    if args.workdir:
        summary = run_selfcheck(args.source, args.root, args.fmt, args.workdir, info=args.info)
    else:
        with tempfile.TemporaryDirectory(prefix="ceal-selfcheck-") as workdir:
            summary = run_selfcheck(args.source, args.root, args.fmt, workdir, info=args.info)
    print(json.dumps(summary))
    if not summary["passed"] and not args.json:
        print("ceal vendor selfcheck: FAILED: boxes were lost or changed on the way", file=sys.stderr)
    return 0 if summary["passed"] else 1
