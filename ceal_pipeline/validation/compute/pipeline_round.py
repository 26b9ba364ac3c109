"""`ceal bench pipeline`: every non-model step of one round through the real Dagster assets at N frames.

1. writes N nuScenes-style frames as mmdet3d info files
   (:mod:`ceal_pipeline.validation.compute.fleet_infos`, reused by later runs with the
   same parameters) and ingests them into a fresh catalog in a child process
   (``catalog_ingest_s``, not part of the round: the catalog is "already ingested");
2. runs ``nightly_acquisition`` for round ``r0000`` in this process with the
   real resources and assets: the catalog asset (an incremental ingest that finds
   nothing new), the history's registration of the N frames, the labeled set, the
   detector and the candidate pool. **The model is replaced**: training, loading
   and scoring are instant stand-ins (:class:`InstantModelStore`), so what is
   timed is the pipeline around the model;
3. scores one shard through the real ``score_candidate_shards`` job (its step time
   is ``shard_overhead_s``: reading the shard's rows of the published pool, its
   frames' records from the catalog, writing the Parquet shard, Dagster's step
   bookkeeping; the stand-in's "forward passes" take no time), then writes the
   other shards' random scores through the real shard path
   (``ShardExchange.shard_frames`` + ``write_score_shard``) without Dagster
   (``random_shards_s``, reported apart: on a deployment those are GPU runs);
4. runs ``round_selection`` (merge, prune, select, export).

``steps`` gives each asset's step seconds (Dagster's step stats);
``non_model_round_s`` is the wall time of the two round jobs plus the one
Dagster shard run; ``shard_import_s`` is a fresh interpreter importing what a
shard run needs (Dagster, the shard assets, the catalog, torch and the
detector), reported apart from ``shard_overhead_s``; ``peak_rss_mb`` is this
process's peak resident memory (the ingest ran in a child).
Targets at N = 10^6 on a 2-core machine: non_model_round_s <= 60,
shard_overhead_s <= 2, peak_rss_mb <= 3000.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.validation.compute.figures import seconds
from ceal_pipeline.validation.compute.progress import Progress
from ceal_pipeline.defs.resources import ModelStoreResource

SCORING = "replaced: instant stand-in detector; random score shards written through the real shard path"

_SHARD_IMPORTS = (
    "import dagster, torch, ceal_pipeline.defs.acquisition.shard_scoring, ceal_pipeline.catalog, "
    "ceal_pipeline.detector.scoring, ceal_pipeline.detector.checkpoints"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames in the catalog (default 1000000)")
    parser.add_argument("--frames-per-file", type=int, default=5_000, help="frames per info file (default 5000)")
    parser.add_argument("--boxes", type=int, default=40, help="mean boxes per frame (default 40)")
    parser.add_argument("--seed-labeled", type=int, default=1_000, help="initial labeled frames (default 1000)")
    parser.add_argument("--pool-fraction", type=float, default=0.05, help="candidate pool share (default 0.05)")
    parser.add_argument("--shard-size", type=int, default=256, help="frames per shard (default 256)")
    parser.add_argument("--k", type=int, default=500, help="frames selected (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="dataset and run seed")
    parser.add_argument("--workdir", default=".ceal/bench-pipeline",
                        help="folder for the info files (kept for reuse) and the round's state (rebuilt)")


@dataclass
class StandInCheckpoint:
    """What a stand-in model store's ``train`` returns: the fields of
    ``detector.checkpoints.Checkpoint`` that the assets read, without importing torch."""

    path: Path
    version: str
    metrics: dict
    loss_curve: tuple = ()


class InstantModelStore(ModelStoreResource):
    """A model store whose detector costs nothing: what remains is the pipeline around it.

    Scores are uniform random numbers seeded by (frame id, model version), so
    re-running a shard gives the same file."""

    def train(self, frames, round_index, *, epochs, seed, init_checkpoint=None, log=None):
        version = f"instant-{seed % 10**8:08d}-{len(frames)}"
        folder = self.round_checkpoint_dir(round_index)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "weights.json"
        path.write_text(json.dumps({"version": version}))
        return StandInCheckpoint(path, version, {"frames": len(frames)})

    def load(self, path):
        version = json.loads(Path(path).read_text())["version"]
        return version, version

    def score(self, model, frames, *, mc_passes, mode, seed, aggregate, batch_size, acquisition_fn="random"):
        from types import SimpleNamespace

        ids = [f.frame_id for f in frames]
        explanations = stand_in_explanations(ids, str(model), acquisition_fn=acquisition_fn, aggregate=aggregate)
        return SimpleNamespace(frame_ids=ids, scores=random_scores(ids, str(model)), forward_passes=0,
                               explanations=lambda: explanations)

    def evaluate(self, model, frames):
        return {}


def random_scores(frame_ids: list[str], salt: str) -> np.ndarray:
    """Uniform [0, 1) scores that depend only on (frame id, salt)."""
    return np.array([int(hashlib.blake2b(f"{f}|{salt}".encode(), digest_size=8).hexdigest(), 16) / 2**64
                     for f in frame_ids])


def stand_in_explanations(frame_ids: list[str], salt: str, *, acquisition_fn: str, aggregate: str) -> list:
    """Explanations for stand-in scores, one per frame: 0-3 objects of random class, place and
    MC spread, drawn from (frame id, salt), so the shard files have the real layout and size.
    None is at the no-detection floor: stand-in scores are not."""
    from ceal_pipeline.core.boxes import Boxes
    from ceal_pipeline.core.frame_explanation import FrameObjects, explain_frame
    from ceal_pipeline.frames.records import DETECTION_CLASSES

    explanations = []
    for frame_id in frame_ids:
        rng = np.random.default_rng(int(hashlib.blake2b(f"{frame_id}|{salt}".encode(), digest_size=8).hexdigest(), 16))
        k = int(rng.integers(0, 4))
        boxes = np.column_stack([rng.uniform(-40, 40, (k, 2)), np.full(k, -1.0), rng.uniform(0.6, 5.0, (k, 3)),
                                 rng.uniform(-np.pi, np.pi, k)])
        objects = FrameObjects(boxes=Boxes(boxes), box_std=rng.uniform(0.01, 0.5, (k, 7)),
                               labels=rng.integers(0, len(DETECTION_CLASSES), k), confidences=rng.uniform(0, 1, k),
                               localization_entropy=rng.uniform(-25.0, -10.0, k))
        explanations.append(explain_frame(objects, DETECTION_CLASSES, acquisition_fn=acquisition_fn,
                                          aggregate=aggregate, at_empty_floor=False))
    return explanations


def _ingest_child(catalog_root: str, source_root: str) -> dict:
    from ceal_pipeline.catalog import FrameCatalog

    started = time.perf_counter()
    report = FrameCatalog(catalog_root).ingest("mmdet3d", source_root)
    return {"seconds": time.perf_counter() - started, "frames": report.frames,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _dataset(work: Path, args, progress: Progress) -> Path:
    from ceal_pipeline.validation.compute import fleet_infos

    data = work / f"infos-n{args.frames}-f{args.frames_per_file}-b{args.boxes}-s{args.seed}"
    done = data / "complete.json"
    if not done.is_file():
        shutil.rmtree(data, ignore_errors=True)
        fleet_infos.write_shared_files(data)
        fleet_infos.write_fleet_infos(data, args.frames, frames_per_file=args.frames_per_file, seed=args.seed,
                                      boxes_per_frame=args.boxes,
                                      progress=lambda d, t: progress.step(f"writing info files {d}/{t}", 0))
        done.write_text(json.dumps({"frames": args.frames}))
    return data


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    return {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(run_id)
            if s.start_time and s.end_time}


def _shard_import_s() -> float:
    code = f"import time; t = time.perf_counter(); {_SHARD_IMPORTS}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    import dagster as dg

    from ceal_pipeline.core.history import write_score_shard
    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.config import (
        CandidatePoolConfig,
        DetectorConfig,
    )
    from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, shard_partition_key
    from ceal_pipeline.defs.resources import AcquisitionHistoryResource, FrameSourceResource, VendorExporterResource

    progress = Progress(7, quiet=args.json)
    work = Path(args.workdir).resolve()
    data = _dataset(work, args, progress)
    home = work / "round"
    shutil.rmtree(home, ignore_errors=True)
    progress.step(f"ingesting {args.frames:,} frames into a fresh catalog (child process)")
    # A process pool's worker, not a Pool's: the ingest starts parser processes of its own.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        ingest = pool.submit(_ingest_child, str(home / "catalog"), str(data)).result()

    resources = {
        "history": AcquisitionHistoryResource(path=str(home / "history.duckdb"), shard_dir=str(home / "shards")),
        "model_store": InstantModelStore(model_dir=str(home / "models")),
        "frame_source": FrameSourceResource(kind="mmdet3d", root=str(data), catalog_dir=str(home / "catalog"),
                                            seed_labeled=args.seed_labeled, synthetic_seed=args.seed),
        # no pre-labels: the instant "detector" has no boxes to offer (the real one's pass costs K frames)
        "exporter": VendorExporterResource(outbox=str(home / "outbox"), inbox=str(home / "inbox"), pre_labels=False,
                                           reviews=str(home / "reviews")),
    }
    defs = build_defs(resources, with_validation=False)
    loggers = {"console": {"config": {"log_level": "WARNING"}}}
    ops = {
        "detector": DetectorConfig(epochs=1, max_eval_frames=0, run_seed=args.seed),
        "candidate_pool": CandidatePoolConfig(pool_fraction=args.pool_fraction, round_zero_mode="prior",
                                              shard_size=args.shard_size, run_seed=args.seed, k=args.k,
                                              per_sequence_cap=0,
                                              # the instant stand-in embeds nothing, so no diversity
                                              selection={"method": "topk"}),
    }

    def config_for(job: str) -> dg.RunConfig:
        nodes = {n.name for n in defs.resolve_job_def(job).nodes_in_topological_order}
        return dg.RunConfig(ops={k: v for k, v in ops.items() if k in nodes}, loggers=loggers)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(acquisition_rounds.name, ["r0000"])
        progress.step("nightly_acquisition r0000: catalog, history, labeled set, detector (instant), pool")
        started = time.perf_counter()
        opening = defs.resolve_job_def("nightly_acquisition").execute_in_process(
            instance=instance, partition_key="r0000", run_config=config_for("nightly_acquisition"))
        opening_s = time.perf_counter() - started
        steps = _step_seconds(instance, opening.run_id)

        exchange = resources["history"].exchange()
        pool = exchange.published_pool(0)
        progress.step(f"one shard of {pool.n_shards} through score_candidate_shards")
        started = time.perf_counter()
        shard_run = defs.resolve_job_def("score_candidate_shards").execute_in_process(
            instance=instance, partition_key=shard_partition_key(0, 0), run_config=config_for("score_candidate_shards"))
        shard_run_s = time.perf_counter() - started
        shard_steps = _step_seconds(instance, shard_run.run_id)

        progress.step(f"random scores for the other {pool.n_shards - 1} shards (real shard path, no Dagster)")
        started = time.perf_counter()
        for shard in range(1, pool.n_shards):
            ids = exchange.shard_frames(0, shard)
            write_score_shard(exchange.scores_path(0, shard), ids, random_scores(ids, pool.model_version),
                              round=0, shard=shard, model_version=pool.model_version, acquisition_fn="random",
                              run_id="bench-pipeline", facts={"forward_passes": 0, "scoring_s": 0.0})
        random_shards_s = time.perf_counter() - started

        progress.step("round_selection r0000: merge, prune, select, export")
        started = time.perf_counter()
        closing = defs.resolve_job_def("round_selection").execute_in_process(
            instance=instance, partition_key="r0000", run_config=config_for("round_selection"))
        closing_s = time.perf_counter() - started
        steps.update(_step_seconds(instance, closing.run_id))
        exported = closing.asset_materializations_for_node("vendor_export")[0].metadata["frames"].value
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    progress.step("a fresh interpreter importing what a shard run needs")
    import_s = _shard_import_s()
    progress.step("done")
    progress.close()
    return {
        "frames": ingest["frames"],
        "scoring": SCORING,
        "catalog_ingest_s": seconds(ingest["seconds"]),
        "steps": {name: seconds(value) for name, value in steps.items()},
        "nightly_acquisition_s": seconds(opening_s),
        "round_selection_s": seconds(closing_s),
        "non_model_round_s": seconds(opening_s + shard_run_s + closing_s),
        "shard_overhead_s": seconds(shard_steps.get("candidate_scores", shard_run_s)),
        "shard_run_s": seconds(shard_run_s),
        "shard_frames": len(exchange.shard_frames(0, 0)),
        "shards": pool.n_shards,
        "pool_frames": pool.frames,
        "random_shards_s": seconds(random_shards_s),
        "selected": int(exported),
        "shard_import_s": seconds(import_s),
        "peak_rss_mb": round(peak_rss, 1),
        "ingest_peak_rss_mb": round(ingest["peak_rss_mb"], 1),
    }
