"""`ceal demo`: generate synthetic data, then run 3 acquisition rounds through Dagster.

Each round runs the pipeline's three jobs in this process (no daemon needed):
train the detector on the labeled set, draw the candidate pool, score its
shards with MC-Dropout, merge, prune, select the top-K and export them to the
outbox. A simulated vendor then "labels" the exported frames: it writes an
ASAM OpenLABEL delivery of the synthetic ground truth of exactly those frames
into the inbox, which the next round's ``labeled_set`` ingests as boxes (the
real ingest path) and trains on. A table per round shows labeled frames, pool size, frames scored against
the unlabeled pool, mAP on the held-out (val) split and seconds.

Everything lives under ``--home`` (default ``.ceal/demo``), including the
Dagster instance, so ``DAGSTER_HOME=.ceal/demo/dagster_home dagster dev -w
workspace.yaml`` shows the demo's runs and asset metadata afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

# The Dagster instance goes too: its round partitions and materializations (a round is
# closed once vendor_export is materialized for it) describe the history being dropped.
_STATE_DIRS = (
    "history.duckdb", "history.duckdb.wal", "catalog", "shards", "models", "outbox", "inbox", "dagster_home"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=".ceal/demo", help="folder for data, history, models and exports")
    parser.add_argument("--rounds", type=int, default=3, help="acquisition rounds to run")
    parser.add_argument("--frames", type=int, default=600, help="synthetic frames to generate (20 per sequence)")
    parser.add_argument("--seed-labeled", type=int, default=60, help="initially labeled frames")
    parser.add_argument("--k", type=int, default=30, help="frames bought per round")
    parser.add_argument("--pool-fraction", type=float, default=0.2, help="candidate pool as a share of the unlabeled pool")
    parser.add_argument("--temperature", type=float, default=0.1, help="softmax temperature over normalised scores")
    parser.add_argument("--mc-passes", type=int, default=10, help="MC-Dropout passes per frame")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of round 0")
    parser.add_argument("--fine-tune-epochs", type=int, default=3, help="epochs of later rounds (warm-started)")
    parser.add_argument("--eval-frames", type=int, default=40, help="held-out frames for mAP")
    parser.add_argument("--shard-size", type=int, default=16, help="frames per scoring shard")
    parser.add_argument(
        "--round-zero", choices=("prior", "full_pool"), default="prior",
        help="round 0: sample from the prior (fast) or score the whole unlabeled pool (the paper's backfill)",
    )
    parser.add_argument("--detector-config", default="models/bevfusion_tiny.py", help="detector config (models/)")
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument(
        "--log-level", default="INFO", help="Dagster console log level (INFO: the assets' messages; DEBUG: every event)"
    )


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


def _instance(home: Path):
    """The demo's own persistent Dagster instance, with the project's dagster.yaml."""
    import os

    import dagster as dg

    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    project_yaml = Path(__file__).resolve().parents[2] / "dagster.yaml"
    if project_yaml.is_file():
        shutil.copyfile(project_yaml, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home.resolve())
    instance = dg.DagsterInstance.get()
    # Without a daemon nobody frees the pool slots of a demo killed mid-step (Ctrl-C):
    # fail its abandoned runs and release their slots, or the next demo would wait on them.
    stale = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    for run in stale:
        instance.report_run_failed(run, "abandoned by an interrupted `ceal demo`")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return instance


def _row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def run(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _HomeLock(home):
        return _run_locked(args, home)


def _run_locked(args: argparse.Namespace, home: Path) -> int:
    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.config import (
        CandidatePoolConfig,
        CandidateScoresConfig,
        DetectorConfig,
    )
    from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
    from ceal_pipeline.defs.resources import (
        AcquisitionHistoryResource,
        FrameSourceResource,
        ModelStoreResource,
        VendorExporterResource,
    )
    from ceal_pipeline.export import simulate_vendor
    from ceal_pipeline.frames.synthetic import generate_dataset

    print(f"ceal demo: starting from round 0 in {home} (the previous demo's history, models, exports and "
          "Dagster runs there are removed; the dataset is kept)", file=sys.stderr)
    _reset_state(home)
    started = time.perf_counter()
    print(f"ceal demo: {args.frames} synthetic frames in {home / 'data'}", file=sys.stderr)
    generate_dataset(home / "data", n_frames=args.frames, seed=args.seed)
    generation_s = time.perf_counter() - started

    resources = {
        "history": AcquisitionHistoryResource(path=str(home / "history.duckdb"), shard_dir=str(home / "shards")),
        "model_store": ModelStoreResource(model_dir=str(home / "models"), detector_config=args.detector_config),
        "frame_source": FrameSourceResource(
            root=str(home / "data"), catalog_dir=str(home / "catalog"), synthetic_frames=args.frames,
            synthetic_seed=args.seed, seed_labeled=args.seed_labeled,
        ),
        "exporter": VendorExporterResource(outbox=str(home / "outbox"), inbox=str(home / "inbox")),
    }
    configs = {
        "detector": DetectorConfig(
            epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, run_seed=args.seed,
            max_eval_frames=args.eval_frames,
        ),
        "candidate_pool": CandidatePoolConfig(
            pool_fraction=args.pool_fraction, temperature=args.temperature, round_zero_mode=args.round_zero,
            shard_size=args.shard_size, run_seed=args.seed, k=args.k, per_sequence_cap=max(2, args.k // 4),
        ),
        "candidate_scores": CandidateScoresConfig(mc_passes=args.mc_passes, run_seed=args.seed),
    }
    defs = build_defs(resources, with_validation=False)
    instance = _instance(home)

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
        print(_row(rows[-1], widths), f"  -> exported {report.selected} frames to {report.export_folder}; "
              f"vendor delivered {len(delivered)} OpenLABEL file(s): {', '.join(p.name for p in delivered)}", file=sys.stderr)

    print(f"\nCEAL demo: {args.rounds} rounds, detector {args.detector_config}, K={args.k}, "
          f"pool {args.pool_fraction:.0%} of the unlabeled frames, T={args.temperature}, {args.mc_passes} MC passes")
    print(_row(header, widths))
    for row in rows:
        print(_row(row, widths))
    total = time.perf_counter() - started
    print(f"\nexports (CSV, JSONL, project manifest, tasks, OpenLABEL, mmdet3d infos): "
          f"{resources['exporter'].outbox}/round-NNNN/")
    print(f"deliveries (OpenLABEL): {resources['exporter'].inbox}/round-NNNN/")
    print(f"history: {resources['history'].path}")
    print(f"dataset generation {generation_s:.0f} s, total {total:.0f} s")
    print(f"browse the runs: DAGSTER_HOME={home / 'dagster_home'} .venv/bin/dagster dev -w workspace.yaml")
    return 0
