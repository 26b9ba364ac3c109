"""`ceal frames quarantined`: the frames kept out of the pool and why; `ceal frames unprune`:
return pruned frames to the pool.

``quarantined`` lists the history's quarantine records (the source could not
read the frame, or it was retired with `ceal labels retire`). A frame the source
reads again (its file fixed or put back) returns to the pool by itself the next
time the catalog is registered (``acquisition_history``); the record stays.

``unprune`` undoes pruning for the given frames, e.g. after a change of model or
acquisition function made their old low scores meaningless: they are in the pool
of the next round and their score history stays. Recorded with the reason.

Both wait out a history that a running round holds open, as the assets do.
"""

from __future__ import annotations

import argparse
import json

from ceal_pipeline.cli.arguments import open_history, plain_text, waiting_out_busy_history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    quarantined = actions.add_parser("quarantined", help="the frames kept out of the pool and why")
    quarantined.add_argument("--json", action="store_true", help="one JSON line per quarantine record")
    unprune = actions.add_parser("unprune", help="return pruned frames to the pool (recorded with a reason)")
    which = unprune.add_mutually_exclusive_group(required=True)
    which.add_argument("--frame", action="append", dest="frames", type=plain_text,
                       help="a pruned frame id (repeatable)")
    which.add_argument("--all", action="store_true", help="every pruned frame")
    unprune.add_argument("--reason", required=True, help="why they return to the pool (recorded)")
    for action in (quarantined, unprune):
        action.add_argument("--history", type=plain_text, default=None,
                            help="the DuckDB history (default: storage.history of the project configuration)")


def run(args: argparse.Namespace) -> int:
    command = f"frames {args.action}"
    history = open_history(args.history, command)
    if args.action == "quarantined":
        records = waiting_out_busy_history(history.quarantined_frames, command)
        for record in records:
            line = {"frame_id": record.frame_id, "reason": record.reason, "path": record.path, "source": record.source}
            print(json.dumps(line) if args.json else f"{record.frame_id}  {record.reason}")
        if not args.json:
            print(f"{len(records)} quarantine records; a frame the source reads again returns to the pool at the "
                  "next registration (acquisition_history)")
        return 0
    if not args.reason.strip():
        raise SystemExit("ceal frames unprune: --reason is empty; say why the frames return (it is recorded)")
    frames = (list(waiting_out_busy_history(history.pruned_frames, command).frame_ids) if args.all
              else list(dict.fromkeys(args.frames)))
    restored = waiting_out_busy_history(lambda: history.unprune(frames, reason=args.reason.strip()), command) \
        if frames else 0
    print(json.dumps({"unpruned": restored, "frames": [str(f) for f in frames][:20], "reason": args.reason.strip()}))
    return 0
