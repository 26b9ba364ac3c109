"""`ceal round`: run acquisition rounds in this process on the project configuration, no daemon.

The same three jobs the schedule and the sensors launch (``nightly_acquisition``,
one ``score_candidate_shards`` run per shard, ``round_selection``), chained in
this process with the deployment's ``ceal.yaml`` (:mod:`ceal_pipeline.configuration`)
and recorded in the deployment's Dagster instance (``<home>/dagster_home``), so
``make dev`` shows the runs afterwards. A round that was opened and not exported
is resumed. Prints one JSON line per round.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ceal_pipeline.cli.arguments import positive_int

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=positive_int, default=1, help="rounds to run (default 1, at least 1)")
    parser.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")


def run(args: argparse.Namespace) -> int:
    from ceal_pipeline.configuration import ProjectConfigError, config_path, load_project_config

    try:
        project, path = load_project_config(), config_path()
    except ProjectConfigError as exc:
        print(f"ceal round: {exc}", file=sys.stderr)
        return 2
    # Imported after the check: the code location reads the same configuration when it loads.
    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.config import run_configs_for
    from ceal_pipeline.defs.acquisition.round_runner import local_instance, run_acquisition_round
    from ceal_pipeline.defs.resources import resources_for
    dagster_home = Path(project.storage.home) / "dagster_home"
    print(f"ceal round: configuration {path or '(none: the gpu preset)'}, Dagster instance {dagster_home}",
          file=sys.stderr)
    defs = build_defs(resources_for(project), with_validation=False)
    with local_instance(dagster_home) as instance:
        for _ in range(args.rounds):
            report = run_acquisition_round(defs, instance, run_configs_for(project), log_level=args.log_level)
            print(json.dumps({
                "round": report.round_index, "labeled_frames": report.labeled_frames,
                "unlabeled_frames": report.unlabeled_frames, "pool_frames": report.pool_frames,
                "shards": report.shards, "frames_scored": report.frames_scored, "selected": report.selected,
                "mAP_val": None if report.map_val != report.map_val else round(report.map_val, 4),
                "export": report.export_folder, "opening_s": round(report.opening_s, 1),
                "scoring_s": round(report.scoring_s, 1), "closing_s": round(report.closing_s, 1),
            }))
    return 0
