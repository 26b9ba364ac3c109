"""`ceal status`: where every round stands, read from the acquisition history's round records.

The history owns the round facts (the detector a round selects with, its pool
and shards, which shards were merged, its selection and its export); this
prints them, one row per round, with what to do about a round that stopped
half way. ``--json`` prints one JSON line per round instead. Read-only: it
waits out a round that holds the history open for writing.
"""

from __future__ import annotations

import argparse
import json

from ceal_pipeline.cli.arguments import open_history, plain_text, waiting_out_busy_history

_NEXT = {
    "started": "its pool is drawn by candidate_pool (nightly_acquisition)",
    "pool drawn": "score shards {missing} (score_candidate_shards partitions {keys}); round_selection then merges them",
    "scored": "round_selection merges, prunes, selects and exports it",
    "selected": "vendor_export (round_selection) writes its export",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--history", type=plain_text, default=None,
                        help="the DuckDB history (default: storage.history of the project configuration)")
    parser.add_argument("--json", action="store_true", help="one JSON line per round")


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.core.round import shard_partition_key

    history = open_history(args.history, "status")
    records = waiting_out_busy_history(history.round_records, "status")
    if args.json:
        for record in records:
            print(json.dumps(record.to_dict()))
        return 0
    if not records:
        print(f"{history.path}: no round started yet (Jobs -> open_next_round in the UI, or `ceal round`)")
        return 0
    width = max(8, *(len(r.model_version or "-") for r in records))
    print(f"{'round':>5}  {'stage':<10}  {'detector':<{width}}  {'pool':>6}  {'shards':>9}  {'selected':>8}  export")
    for r in records:
        shards = "-" if r.shards is None else f"{len(r.shards_ingested)}/{r.shards}"
        export = "-" if r.export is None else f"{r.export['path']} ({r.export['n_frames']} frames)"
        print(f"{r.round:>5}  {r.stage:<10}  {r.model_version or '-':<{width}}  "
              f"{'-' if r.pool_frames is None else r.pool_frames:>6}  {shards:>9}  {r.selected:>8}  {export}")
    last = records[-1]
    if last.stage != "exported":
        shown, more = last.missing_shards[:5], ", ..." if len(last.missing_shards) > 5 else ""
        print(f"round {last.round} is not exported; next: " + _NEXT[last.stage].format(
            missing=", ".join(map(str, shown)) + more,
            keys=", ".join(shard_partition_key(last.round, s) for s in shown) + more))
    return 0
