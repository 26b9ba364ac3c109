"""`ceal init`: check a dataset like `ceal inspect` does, then write the project configuration.

Real data in three commands::

    ceal init --source aimotive --root /data/aimotive      # or: --source mmdet3d --root R --info FILE
    make dev                                               # the UI and the daemon on that configuration
    # in the UI: add partition r0000 to acquisition_rounds and launch nightly_acquisition
    # (or let the nightly schedule do it); the sensors carry the round to the export

The configuration goes to ``$CEAL_CONFIG`` when set, else ``<home>/ceal.yaml``
(``--home``, default ``$CEAL_HOME`` or ``./.ceal``), where ``make dev`` and
``dagster dev`` find it. The first round's seed set is the frames annotated in
the source (``label_mode: source``: the rest form the unlabeled pool). When every
frame is annotated nothing would be left to buy, so the vendor is simulated
(``simulated_vendor``): a seed set of them is labeled and the others' labels are
revealed only when a delivery for them arrives in the inbox. K and the candidate
pool are sized so that a round can be met on the dataset at hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.wording import counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, choices=("aimotive", "mmdet3d"), help="the dataset's format")
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--info", action="append", metavar="FILE",
                        help="mmdet3d: info file relative to --root (repeatable; default: every *.pkl)")
    parser.add_argument("--preset", choices=("gpu", "cpu-small"), default="gpu",
                        help="gpu (default: bevfusion_lite, full-pool round 0) or cpu-small (the tiny detector: "
                             "a round in minutes on a CPU)")
    parser.add_argument("--label-mode", choices=("source", "simulated_vendor"),
                        help="default: source, or simulated_vendor when every frame is annotated")
    parser.add_argument("--seed-labeled", type=int,
                        help="simulated_vendor: frames labeled in round 0 (default: a fifth of the annotated)")
    parser.add_argument("--k", type=int, help="frames bought per round (default: the preset's, at most what fits)")
    parser.add_argument("--home", help="folder of the deployment's state (default: $CEAL_HOME or ./.ceal)")
    parser.add_argument("--config", help="file to write (default: $CEAL_CONFIG or <home>/ceal.yaml)")
    parser.add_argument("--limit", type=int, default=50, help="load the points of only the first N frames (default 50)")
    parser.add_argument("--force", action="store_true", help="replace an existing configuration file")


class InitError(ValueError):
    """The dataset cannot drive a round as it is; the message says what to change."""


def plan_configuration(summary: dict, args: argparse.Namespace, home: Path) -> tuple[dict, list[str]]:
    """The ``ceal.yaml`` content for the inspected dataset, and notes for the user."""
    from ceal_pipeline.configuration import PRESETS
    from ceal_pipeline.core.sampling import pool_size

    preset = PRESETS[args.preset]
    train = summary["splits"].get("train", 0)
    annotated = summary["labeled_by_split"].get("train", 0)
    if summary["frames"] == 0 or train == 0:
        from ceal_pipeline.cli.inspect import describe_quarantine

        found = ("no usable frame" if summary["frames"] == 0 else
                 f"{summary['frames']} frames but none in the train split ({summary['splits']})")
        raise InitError(f"{args.root}: {found}: {describe_quarantine(summary.get('quarantine_reasons', {}))}; "
                        "check --source, --root and --info (`ceal inspect --frames --json` lists every frame)")
    if annotated == 0:
        raise InitError(f"{args.root}: none of the {train} train frames is annotated; the first round trains on "
                        "annotated frames: add annotations for a seed set of frames to the source, then run again")
    notes = []
    label_mode = args.label_mode or ("simulated_vendor" if annotated == train else "source")
    if label_mode == "source":
        seed, unlabeled = annotated, train - annotated
        if unlabeled == 0:
            raise InitError(f"{args.root}: every train frame is annotated, so with label_mode source nothing is "
                            "left to buy; use --label-mode simulated_vendor (the vendor is simulated)")
        notes.append(f"seed set: the {annotated} train frames annotated in the source; {unlabeled} unannotated "
                     "frames form the unlabeled pool (vendor labels: add them to the source)")
    else:
        seed = args.seed_labeled or max(1, annotated // 5)
        if seed >= annotated:
            raise InitError(f"--seed-labeled {seed}: at most {annotated - 1} of the {annotated} annotated frames")
        unlabeled = annotated - seed
        notes.append(f"every train frame is annotated: the vendor is simulated; round 0 trains on {seed} of them, "
                     f"the other {unlabeled} are the unlabeled pool whose labels a delivery (inbox) reveals")
    parameters = dict(preset["round"])
    pool = pool_size(unlabeled, fraction=parameters["pool_fraction"])
    k = args.k or min(parameters["k"], max(1, pool // 2))
    if k > unlabeled:
        raise InitError(f"--k {k}: only {unlabeled} frames can be bought")
    if k > pool:  # draw a pool that can hold K
        parameters["pool_fraction"] = min(1.0, round(2 * k / unlabeled, 3))
        notes.append(f"candidate pool raised to {parameters['pool_fraction']:.0%} of the unlabeled frames to hold K={k}")
    if summary["splits"].get("val", 0) == 0:
        notes.append("no val split: the detector's held-out mAP is not measured (add a val split to see it)")
    source = {"kind": args.source, "root": str(canonical_path(args.root)), "label_mode": label_mode}
    if args.info:
        source["info"] = list(args.info)
    if label_mode == "simulated_vendor":
        source["seed_labeled"] = seed
    cap = parameters["per_sequence_cap"]
    if cap and cap * summary["sequences"] < k:
        cap = 0
        notes.append(f"{counted(summary['sequences'], 'sequence')} cannot give K={k} at the preset's per-sequence cap: "
                     "no cap")
    configuration = {
        "preset": args.preset,
        "source": source,
        "storage": {"home": str(home)},
        "round": {"k": k, "per_sequence_cap": cap, "pool_fraction": parameters["pool_fraction"]},
    }
    return configuration, notes


def _target(args: argparse.Namespace) -> tuple[Path, Path]:
    from ceal_pipeline.configuration import CONFIG_FILE_NAME, default_home

    home = canonical_path(args.home) if args.home else default_home()
    named = args.config or os.environ.get("CEAL_CONFIG")
    return (canonical_path(named) if named else home / CONFIG_FILE_NAME), home


def run(args: argparse.Namespace) -> int:
    import yaml

    from ceal_pipeline.cli.inspect import inspect_source
    from ceal_pipeline.configuration import ProjectConfigError, load_project_config

    path, home = _target(args)
    if path.exists() and not args.force:
        print(f"ceal init: {path} exists; pass --force to replace it, or --config/--home to write another",
              file=sys.stderr)
        return 2
    options = {"check": "header"}
    if args.source == "mmdet3d":
        options["info"] = args.info
    print(f"ceal init: checking {args.source} data in {args.root} (points of the first {args.limit} frames) ...",
          file=sys.stderr)
    try:
        summary, quarantined = inspect_source(args.source, args.root, options, limit=args.limit)
        configuration, notes = plan_configuration(summary, args, home)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        print(f"ceal init: {exc}", file=sys.stderr)
        return 2
    if summary["boxes_within_range"] and summary["boxes_with_points_within_range"] < 0.7 * summary["boxes_within_range"]:
        notes.append("WARNING: fewer than 70 % of the boxes within range hold LiDAR points: check the calibration "
                     "and box convention (`ceal inspect --frames --json`)")
    if quarantined:
        from ceal_pipeline.cli.inspect import describe_quarantine

        notes.append(f"{len(quarantined)} frames are quarantined and left out of the pipeline; "
                     f"{describe_quarantine(summary['quarantine_reasons'])}")

    header = (f"# written by `ceal init` from {counted(summary['frames'], 'frame')} ({summary['labeled_frames']} "
              f"annotated, {counted(summary['sequences'], 'sequence')}) in {summary['root']}\n"
              f"# preset {args.preset}: every value not written here is the preset's "
              "(ceal_pipeline/configuration/presets.py); README: Configuration\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(configuration, sort_keys=False))
    try:
        project = load_project_config(path, environ={})
    except ProjectConfigError as exc:  # a bug here, never the user's: say so loudly
        print(f"ceal init: wrote an invalid configuration: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    print(f"  source     {project.source.kind} at {project.source.root}: {counted(summary['frames'], 'frame')}, "
          f"{summary['labeled_frames']} annotated, {counted(summary['boxes'], 'box', 'boxes')}, "
          f"{summary['quarantined']} quarantined")
    print(f"  detector   {project.detector.config} on {project.detector.device}")
    print(f"  round      K={project.round.k}, pool {project.round.pool_fraction:.0%} of the unlabeled frames, "
          f"T={project.round.temperature}, {project.round.mc_passes} MC passes, round 0: {project.round.round_zero_mode}")
    print(f"  state      {project.storage.home}")
    for note in notes:
        print(f"  note: {note}")
    config_env = "" if path == home / "ceal.yaml" else f" CEAL_CONFIG={path}"
    print("next: run rounds on it with the UI and the daemon:\n"
          f"  make dev CEAL_HOME={home}{config_env}\n"
          "  then in the UI: Jobs -> open_next_round -> Launchpad -> Launch Run (or wait for the nightly "
          "schedule); it opens round r0000 and the sensors score its shards and export the selection")
    return 0
