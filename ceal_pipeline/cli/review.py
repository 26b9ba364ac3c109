"""`ceal review --round R [--open]`: fly through what a round bought, in 3D (Rerun).

Writes the round's review recording (``<storage.home>/reviews/round-NNNN.rrd``,
see :mod:`ceal_pipeline.review.recording`) from the round's export and the
frame catalog, or opens it in the Rerun viewer (``--open``; written first when
missing). Beside the bought frames it shows the round's best-scoring unbought
candidates (``--candidates N``, default 5) to compare. ``--json`` prints one line: frames, points, boxes, camera images,
seconds and bytes, in total and per frame, and the counts read back from the
file with Rerun's own reader.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round", type=int, required=True, help="the round whose export to review")
    parser.add_argument("--open", action="store_true", help="open the recording in the Rerun viewer")
    parser.add_argument("--force", action="store_true", help="write the recording again even if it exists")
    parser.add_argument("--output", default=None, help="the .rrd file (default: <storage.home>/reviews/round-NNNN.rrd)")
    parser.add_argument("--candidates", type=int, default=None,
                        help="best-scoring unbought candidates shown beside the bought frames (default 5)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.catalog import FrameCatalog
    from ceal_pipeline.configuration import load_project_config
    from ceal_pipeline.export.file_drop import export_folder
    from ceal_pipeline.review.recording import recording_counts
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.core.history.shards import ShardExchange
    from ceal_pipeline.review.round_review import (
        DEFAULT_CANDIDATES,
        review_path,
        reviews_folder,
        unbought_candidates,
        write_round_review,
    )

    storage = load_project_config().storage
    path = Path(args.output) if args.output else review_path(reviews_folder(storage.home), args.round)
    summary = None
    if args.force or not path.is_file() or not args.open:
        catalog = FrameCatalog(storage.catalog)
        candidates = []
        n = DEFAULT_CANDIDATES if args.candidates is None else args.candidates
        folder = export_folder(storage.outbox, args.round)
        if n > 0 and Path(storage.history).is_file() and folder.is_dir():
            history = AcquisitionHistory(storage.history)
            scores = history.round_scores(args.round)
            bought = [json.loads(line)["frame_id"] for line in
                      (folder / "selected_frames.jsonl").read_text().splitlines() if line.strip()]
            candidates = unbought_candidates(scores.frame_ids, scores.scores, bought, n, catalog.records,
                                             lambda ids: ShardExchange(storage.shards).explanations(args.round, ids))
        try:
            summary = write_round_review(args.round, folder, catalog.records, path, candidates)
        except FileNotFoundError as exc:
            raise SystemExit(f"ceal review: {exc}") from None
    if args.json or summary is not None:
        line = {"round": args.round, "path": str(path), **(summary.to_record() if summary else {}),
                "read_back": recording_counts(path)}
        print(json.dumps(line))
    if args.open:
        try:
            subprocess.Popen([sys.executable, "-m", "rerun", str(path)])
        except OSError as exc:
            raise SystemExit(f"ceal review: could not start the Rerun viewer ({exc}); open {path} with `rerun {path}`")
        if not args.json:
            print(f"opened {path} in the Rerun viewer", file=sys.stderr)
    return 0
