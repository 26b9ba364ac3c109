"""`ceal bench round`: one CEAL round against one full-pool rescoring round, same detector.

Both rounds run through the Dagster pipeline in this process (the same three
jobs the daemon chains), on the same synthetic dataset and the same trained
detector checkpoint, each in its own history so neither sees the other's
scores:

- CEAL: the candidate pool is ``--pool-fraction`` of the unlabeled pool drawn
  from the softmax over historical scores (round 0: the optimistic prior), and
  only it is rescored;
- full: every unlabeled frame is rescored (the paper's round-0 backfill, i.e.
  classic full-pool acquisition).

The acquisition seconds of a round are the candidate-pool step, the scoring of
every shard (one Dagster run each) and the merge/prune/select/export job: what a
round costs beyond training, which both share. ``compute_ratio`` is the full
round's acquisition seconds over the CEAL round's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from ceal_pipeline.validation.compute.figures import ratio, seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=20_000, help="synthetic frames in the dataset")
    parser.add_argument("--pool-fraction", type=float, default=0.05, help="CEAL candidate pool share alpha")
    parser.add_argument("--mc-passes", type=int, default=10, help="MC-Dropout passes T")
    parser.add_argument("--k", type=int, default=10, help="frames selected per round (at most the CEAL pool)")
    parser.add_argument("--seed-labeled", type=int, default=100, help="labeled frames the detector trains on")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (training is not what is compared)")
    parser.add_argument("--shard-size", type=int, default=256, help="frames per scoring shard")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per scoring forward batch")
    parser.add_argument("--detector-config", default="models/bevfusion_tiny.py", help="detector config")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--home", default=".ceal/bench-round", help="work folder (the dataset is kept for reuse)")
    parser.add_argument("--seed", type=int, default=0, help="run and dataset seed")


def _resources(home: Path, data: Path, models: Path, args: argparse.Namespace) -> dict:
    from ceal_pipeline.defs.resources import (
        AcquisitionHistoryResource,
        FrameSourceResource,
        ModelStoreResource,
        VendorExporterResource,
    )

    return {
        "history": AcquisitionHistoryResource(path=str(home / "history.duckdb"), shard_dir=str(home / "shards")),
        "model_store": ModelStoreResource(model_dir=str(models), detector_config=args.detector_config, device=args.device),
        "frame_source": FrameSourceResource(
            root=str(data), catalog_dir=str(home / "catalog"), synthetic_frames=args.frames,
            synthetic_seed=args.seed, seed_labeled=args.seed_labeled,
        ),
        "exporter": VendorExporterResource(outbox=str(home / "outbox"), inbox=str(home / "inbox"),
                                           reviews=str(home / "reviews")),
    }


def _configs(args: argparse.Namespace, round_zero_mode: str) -> dict:
    from ceal_pipeline.defs.acquisition.config import (
        CandidatePoolConfig,
        CandidateScoresConfig,
        DetectorConfig,
    )

    return {
        "detector": DetectorConfig(epochs=args.epochs, run_seed=args.seed, max_eval_frames=0),
        "candidate_pool": CandidatePoolConfig(
            pool_fraction=args.pool_fraction, round_zero_mode=round_zero_mode, shard_size=args.shard_size,
            run_seed=args.seed, k=args.k, per_sequence_cap=0, mc_passes=args.mc_passes, prune=False,
        ),
        "candidate_scores": CandidateScoresConfig(batch_size=args.batch_size),
    }


def run(args: argparse.Namespace) -> dict:
    import dagster as dg

    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
    from ceal_pipeline.frames.synthetic import generate_dataset

    def progress(message: str) -> None:
        if not args.json:
            print(f"[bench round] {message}", file=sys.stderr, flush=True)

    work = Path(args.home).resolve()
    data = work / f"data-{args.frames}-seed{args.seed}"
    ceal_home, full_home = work / "ceal", work / "full"
    for stale in (ceal_home, full_home):
        shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()
    progress(f"synthetic dataset of {args.frames} frames in {data}")
    generate_dataset(data, n_frames=args.frames, seed=args.seed)
    generation_s = time.perf_counter() - started

    # The detector is trained once, in the CEAL home; the full-pool deployment is
    # handed the same published checkpoint, so both rounds score with identical weights.
    models = ceal_home / "models"
    ceal = build_defs(_resources(ceal_home, data, models, args), with_validation=False)
    full = build_defs(_resources(full_home, data, models, args), with_validation=False)
    # One Dagster instance per deployment: each opens its own round r0000.
    ceal_instance, full_instance = dg.DagsterInstance.ephemeral(), dg.DagsterInstance.ephemeral()

    progress(f"CEAL round: train on {args.seed_labeled} frames, rescore {args.pool_fraction:.0%} of the pool")
    ceal_report = run_acquisition_round(ceal, ceal_instance, _configs(args, "prior"), log_level="WARNING")
    progress(f"CEAL round: {ceal_report.frames_scored} frames scored in {ceal_report.acquisition_s:.1f} s")
    progress("full round: rescore every unlabeled frame with the same detector")
    full_report = run_acquisition_round(full, full_instance, _configs(args, "full_pool"), log_level="WARNING")
    progress(f"full round: {full_report.frames_scored} frames scored in {full_report.acquisition_s:.1f} s")

    model = ceal.resources["model_store"].published_for_round(0)
    if model is None or full.resources["model_store"].published_for_round(0).version != model.version:
        raise RuntimeError("the two rounds did not use the same detector; the comparison is void")
    return {
        "frames": args.frames,
        "pool_frames": ceal_report.unlabeled_frames,
        "candidate_pool_frames": ceal_report.pool_frames,
        "scored_ceal": ceal_report.frames_scored,
        "scored_full": full_report.frames_scored,
        "ceal_round_s": seconds(ceal_report.acquisition_s),
        "full_round_s": seconds(full_report.acquisition_s),
        "compute_ratio": ratio(full_report.acquisition_s, ceal_report.acquisition_s),
        "ceal_scoring_s": seconds(ceal_report.scoring_s),
        "full_scoring_s": seconds(full_report.scoring_s),
        "forward_passes_ceal": int(ceal_report.ledger.get("forward_passes", 0)),
        "forward_passes_full": int(full_report.ledger.get("forward_passes", 0)),
        "shards_ceal": ceal_report.shards,
        "shards_full": full_report.shards,
        "mc_passes": args.mc_passes,
        "training_s": seconds(model.training_s),
        "generation_s": seconds(generation_s),
        "detector": model.version,
        "device": args.device,
    }
