"""`ceal export withdraw`: the vendor will not label (some of) a round's export.

Exported frames leave the unlabeled pool until their labels arrive (they are
never bought twice). When the vendor declines or loses an export, withdraw it
here: the withdrawal is recorded in the acquisition history with its reason,
and later rounds may buy those frames again.
"""

from __future__ import annotations

import argparse
import json

from ceal_pipeline.cli.arguments import open_history, round_index, waiting_out_busy_history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    withdraw = actions.add_parser("withdraw", help="withdraw (part of) a round's export, recorded with a reason")
    withdraw.add_argument("--round", type=round_index, required=True, help="the round whose export is withdrawn")
    withdraw.add_argument("--frame", action="append", default=None, dest="frames",
                          help="a frame of that export (repeat it); default: the whole export")
    withdraw.add_argument("--reason", required=True, help="who asked for it and why (recorded)")
    withdraw.add_argument("--history", default=None, help="the DuckDB history (default: storage.history of the project configuration, ceal.yaml)")


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.core.history.errors import HistoryError

    history = open_history(args.history, "export withdraw")
    try:
        withdrawn = waiting_out_busy_history(
            lambda: history.withdraw_export(args.round, args.frames, reason=args.reason), "export withdraw")
    except (HistoryError, ValueError) as exc:
        raise SystemExit(f"ceal export withdraw: {exc}") from None
    print(json.dumps({"round": args.round, "withdrawn": int(withdrawn), "reason": args.reason}))
    return 0
