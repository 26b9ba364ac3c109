"""`ceal demo`: generate synthetic data, then run 3 acquisition rounds through Dagster.

Each round runs the pipeline's three jobs in this process (no daemon needed):
train the detector on the labeled set, draw the candidate pool, score its
shards with MC-Dropout, merge, prune, select the top-K and export them to the
outbox. A simulated vendor then "labels" the exported frames: it writes an
ASAM OpenLABEL delivery of the synthetic ground truth of exactly those frames
into the inbox, which the next round's ``labeled_set`` ingests as boxes (the
real ingest path) and trains on. A table per round shows labeled frames, pool size, frames scored against
the unlabeled pool, mAP on the held-out (val) split and seconds.

Everything lives under ``--home`` (default ``.ceal/demo``): the demo's
``ceal.yaml`` (the ``cpu-small`` preset plus the options given), the data, the
history and the Dagster instance, so ``make dev CEAL_HOME=$PWD/.ceal/demo``
shows the demo's runs and asset metadata afterwards, with the same
configuration. Each run resets that folder's state (not its dataset).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from ceal_pipeline.cli.arguments import positive_int

# The Dagster instance goes too: its round partitions and materializations (a round is
# closed once vendor_export is materialized for it) describe the history being dropped.
_STATE_DIRS = (
    "history.duckdb", "history.duckdb.wal", "catalog", "shards", "models", "outbox", "inbox", "dagster_home",
    "ceal.yaml",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Unset options take the cpu-small preset's values (ceal_pipeline/configuration/presets.py).
    parser.add_argument("--home", default=".ceal/demo", help="folder for data, history, models and exports (CEAL_HOME "
                        "of the demo: `make dev CEAL_HOME=$PWD/.ceal/demo` browses it)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="acquisition rounds to run")
    parser.add_argument("--frames", type=int, help="synthetic frames to generate, 20 per sequence (preset: 600)")
    parser.add_argument("--seed-labeled", type=int, help="initially labeled frames (preset: 60)")
    parser.add_argument("--k", type=int, help="frames bought per round (preset: 30)")
    parser.add_argument("--pool-fraction", type=float, help="candidate pool as a share of the unlabeled pool (preset: 0.2)")
    parser.add_argument("--temperature", type=float, help="softmax temperature over normalised scores (preset: 0.1)")
    parser.add_argument("--mc-passes", type=int, help="MC-Dropout passes per frame (preset: 10)")
    parser.add_argument("--epochs", type=int, help="training epochs of round 0 (preset: 8)")
    parser.add_argument("--fine-tune-epochs", type=int, help="epochs of later rounds, warm-started (preset: 3)")
    parser.add_argument("--eval-frames", type=int, help="held-out frames for mAP (preset: 40)")
    parser.add_argument("--shard-size", type=int, help="frames per scoring shard (preset: 16)")
    parser.add_argument(
        "--round-zero", choices=("prior", "full_pool"),
        help="round 0: sample from the prior (fast, the preset) or score the whole unlabeled pool (the paper's backfill)",
    )
    parser.add_argument("--detector-config", help="detector config, by name or path (preset: bevfusion_tiny)")
    parser.add_argument("--seed", type=int, help="run seed (preset: 0)")
    parser.add_argument(
        "--log-level", default="INFO", help="Dagster console log level (INFO: the assets' messages; DEBUG: every event)"
    )


def demo_configuration(args: argparse.Namespace) -> dict:
    """The demo's ``ceal.yaml``: the cpu-small preset, storage and data in the demo's home, and
    the options given on the command line."""
    chosen = {
        "source": {"synthetic_frames": args.frames, "seed_labeled": args.seed_labeled, "synthetic_seed": args.seed},
        "detector": {"config": args.detector_config, "epochs": args.epochs, "fine_tune_epochs": args.fine_tune_epochs,
                     "max_eval_frames": args.eval_frames},
        "round": {"k": args.k, "pool_fraction": args.pool_fraction, "temperature": args.temperature,
                  "mc_passes": args.mc_passes, "shard_size": args.shard_size, "round_zero_mode": args.round_zero,
                  "run_seed": args.seed},
    }
    configuration = {"preset": "cpu-small", "storage": {"home": "."}}
    for section, values in chosen.items():
        configuration[section] = {key: value for key, value in values.items() if value is not None}
    configuration["source"].update(kind="synthetic", root="data")
    if args.k is not None:  # the preset's cap is a quarter of its K
        configuration["round"]["per_sequence_cap"] = max(2, args.k // 4)
    return configuration


class _HomeLock:
    """An exclusive lock on the demo's home for the whole run: a second ``ceal demo``
    on the same home would delete this one's history and models under it."""

    def __init__(self, home: Path):
        self.path = home / ".demo.lock"
        self._handle = None

    def __enter__(self) -> "_HomeLock":
        import fcntl
        import os

        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown"
            self._handle.close()
            raise SystemExit(
                f"ceal demo: another demo (pid {holder}) is running on {self.path.parent}; wait for it to finish, "
                "or give this one its own folder with --home"
            ) from None
        self._handle.truncate(0)
        self._handle.write(f"{os.getpid()}\n")
        self._handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()  # closing releases the lock


def _reset_state(home: Path) -> None:
    """Start from round 0 each time: drop history, shards, models, drops and the Dagster
    instance's runs; keep the dataset."""
    for name in _STATE_DIRS:
        path = home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def _check_sizes(args: argparse.Namespace) -> None:
    """Refuse, before the previous demo is reset, a dataset too small for the seed set and one
    round's purchase (every frame of a synthetic dataset is annotated; some sequences are held out)."""
    from ceal_pipeline.configuration.presets import PRESETS

    preset = PRESETS["cpu-small"]
    frames = args.frames if args.frames is not None else preset["source"]["synthetic_frames"]
    seed = args.seed_labeled if args.seed_labeled is not None else preset["source"]["seed_labeled"]
    k = args.k if args.k is not None else preset["round"]["k"]
    if min(frames, seed, k) < 1 or frames < 2 * (seed + k):
        raise SystemExit(
            f"ceal demo: --frames {frames} is too few for a seed set of {seed} (--seed-labeled) and {k} frames "
            f"bought a round (--k), with a part of the frames held out for evaluation: give --frames "
            f"{max(20, 2 * (seed + k))} or more, or lower --seed-labeled / --k")


def run(args: argparse.Namespace) -> int:
    _check_sizes(args)
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _HomeLock(home):
        return _run_locked(args, home)


def _run_locked(args: argparse.Namespace, home: Path) -> int:
    import yaml

    from ceal_pipeline.configuration import CONFIG_FILE_NAME, load_project_config
    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.config import run_configs_for
    from ceal_pipeline.defs.acquisition.round_runner import local_instance, run_acquisition_round
    from ceal_pipeline.defs.resources import resources_for
    from ceal_pipeline.cli.demo_vendor import simulate_vendor
    from ceal_pipeline.frames.synthetic import generate_dataset

    print(f"ceal demo: resetting {home}: the previous demo's history, models, exports and Dagster runs there are "
          "removed (the dataset is kept); starting from round 0", file=sys.stderr)
    _reset_state(home)
    config_file = home / CONFIG_FILE_NAME
    config_file.write_text("# written by `ceal demo`: the cpu-small preset with the demo's options\n"
                           + yaml.safe_dump(demo_configuration(args), sort_keys=False))
    # Only this file: the demo's variables must not be amended by the shell's CEAL_* ones.
    project = load_project_config(config_file, environ={})
    source, detector, parameters = project.source, project.detector, project.round
    started = time.perf_counter()
    print(f"ceal demo: {source.synthetic_frames} synthetic frames in {source.root}", file=sys.stderr)
    generate_dataset(source.root, n_frames=source.synthetic_frames, seed=source.synthetic_seed)
    generation_s = time.perf_counter() - started

    resources = resources_for(project)
    configs = run_configs_for(project)
    defs = build_defs(resources, with_validation=False)
    instance = local_instance(home / "dagster_home")

    header = ("round", "labeled", "pool", "scored / unlabeled", "mAP (val)", "seconds")
    widths = (5, 7, 5, 20, 9, 7)
    rows = []
    for index in range(args.rounds):
        print(f"round {index}: train, draw the pool, score its shards, select, export ...", file=sys.stderr)
        round_started = time.perf_counter()
        report = run_acquisition_round(defs, instance, configs, log_level=args.log_level)
        delivered = simulate_vendor(resources["exporter"].outbox, resources["exporter"].inbox,
                                    resources["frame_source"].catalog().records)
        seconds = time.perf_counter() - round_started
        share = report.frames_scored / max(1, report.unlabeled_frames)
        rows.append((
            report.round_index, report.labeled_frames, report.pool_frames,
            f"{report.frames_scored} / {report.unlabeled_frames} ({share:.0%})", f"{report.map_val:.3f}",
            f"{seconds:.0f}",
        ))
        # Each round's row lands between Dagster's log lines, so it carries its own header.
        print(_row(header, widths), file=sys.stderr)
        print(_row(rows[-1], widths), f"  -> exported {report.selected} frames to {report.export_folder}; "
              f"vendor delivered {len(delivered)} OpenLABEL file(s): {', '.join(p.name for p in delivered)}", file=sys.stderr)

    print(f"\nCEAL demo: {args.rounds} rounds, detector {detector.config}, K={parameters.k}, "
          f"pool {parameters.pool_fraction:.0%} of the unlabeled frames, T={parameters.temperature}, "
          f"{parameters.mc_passes} MC passes (preset cpu-small, {config_file})")
    print(_row(header, widths))
    for row in rows:
        print(_row(row, widths))
    total = time.perf_counter() - started
    print(f"\nexports (CSV, JSONL, project manifest, tasks, OpenLABEL, mmdet3d infos): "
          f"{resources['exporter'].outbox}/round-NNNN/")
    print(f"deliveries (OpenLABEL): {resources['exporter'].inbox}/round-NNNN/")
    print(f"history: {resources['history'].path}")
    print(f"dataset generation {generation_s:.0f} s, total {total:.0f} s")
    print(f"browse the runs: make dev CEAL_HOME={home}   (or: CEAL_HOME={home} "
          f"DAGSTER_HOME={home / 'dagster_home'} .venv/bin/dagster dev -w workspace.yaml)")
    return 0
