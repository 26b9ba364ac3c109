"""Assets that open a round: frame_catalog, acquisition_history, labeled_set, detector, candidate_pool.

They run in the ``nightly_acquisition`` job. A round opened before and not yet
exported is resumed, not redrawn: the same detector checkpoint and the same
candidate pool are reused (see :mod:`ceal_pipeline.defs.acquisition.rounds`).
"""


import hashlib
import time
from collections import Counter
from dataclasses import replace

import dagster as dg
import numpy as np

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.defs.acquisition.config import ROUND_ZERO_MODES, CandidatePoolConfig, DetectorConfig
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown
from ceal_pipeline.defs.acquisition.partitions import candidate_shards
from ceal_pipeline.defs.acquisition.rounds import opening_round
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    PublishedModel,
    VendorExporterResource,
)
from ceal_pipeline.export import read_label_deliveries

GROUP = "acquisition"


@dg.asset(
    group_name="catalog",
    kinds={"python"},
    description="Every known frame (id, sequence, timestamp, sensor paths, split) from the configured source; "
    "the synthetic generator writes its dataset first. Unreadable frames are quarantined with their reason.",
)
def frame_catalog(context: dg.AssetExecutionContext, frame_source: FrameSourceResource) -> dg.MaterializeResult:
    result = frame_source.read()
    splits = Counter(frame.split for frame in result.frames)
    reasons = Counter(q.reason.split(":", 1)[0] for q in result.quarantined)
    if result.quarantined:
        context.log.warning(
            f"{len(result.quarantined)} frames quarantined, e.g. {result.quarantined[0].frame_id}: "
            f"{result.quarantined[0].reason} ({result.quarantined[0].path})"
        )
    return dg.MaterializeResult(
        metadata={
            "frames": len(result.frames),
            "sequences": len({frame.sequence_id for frame in result.frames}),
            "splits": dg.MetadataValue.json(dict(splits)),
            "annotated_in_source": sum(frame.is_labeled for frame in result.frames),
            "quarantined": len(result.quarantined),
            "quarantine_reasons": dg.MetadataValue.json(dict(reasons)),
            "source": f"{frame_source.kind}:{frame_source.root}",
        }
    )


def acquisition_catalog(frame_source: FrameSourceResource) -> list:
    """The frames CEAL may acquire: the source's train split. Val frames stay out of the
    history (they are the held-out set). With a simulated vendor the source's ground
    truth is stripped, so only the seed set and delivered frames count as labeled."""
    frames = [f for f in frame_source.read().frames if f.split == "train"]
    if frame_source.label_mode == "simulated_vendor":
        frames = [replace(f, boxes=None, labels=None) if f.is_labeled else f for f in frames]
    return frames


@dg.asset(
    deps=[frame_catalog],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="The DuckDB acquisition history: the catalog's train frames and quarantined frames registered "
    "(idempotently), the append-only score events and each frame's latest score.",
)
def acquisition_history(
    context: dg.AssetExecutionContext,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
    exporter: VendorExporterResource,
) -> dg.MaterializeResult:
    round_index = opening_round(history.shards(), exporter.outbox, context.run.tags)
    store = history.open()
    registered = store.register_frames(acquisition_catalog(frame_source), label_round=round_index)
    quarantined = store.quarantine(frame_source.read().quarantined, round=round_index)
    pool = store.unlabeled_pool()
    return dg.MaterializeResult(
        metadata={
            "frames": store.frame_count(),
            "frames_added": int(registered.added),
            "quarantined_added": int(quarantined),
            "labeled_frames": len(store.labeled_frames()),
            "unlabeled_pool": len(pool),
            "never_scored": int(np.isnan(pool.scores).sum()),
            "score_events": store.score_event_count(),
            "path": dg.MetadataValue.path(history.path),
        }
    )


@dg.asset(
    deps=[acquisition_history],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="Frames with labels: the seed set plus what the vendor delivered (inbox). With label_mode "
    "'source' every frame annotated in the source counts as labeled.",
)
def labeled_set(
    context: dg.AssetExecutionContext,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
    exporter: VendorExporterResource,
) -> dg.MaterializeResult:
    round_index = opening_round(history.shards(), exporter.outbox, context.run.tags)
    store = history.open()
    added = {}
    if frame_source.label_mode == "source":
        annotated = [f.frame_id for f in frame_source.read().frames if f.split == "train" and f.is_labeled]
        if annotated:
            added["source"] = store.add_labels(annotated, round=round_index, source="source")
    else:
        if len(store.labeled_frames()) == 0:
            seed_set = _seed_set(frame_source.read().frames, frame_source.seed_labeled, frame_source.synthetic_seed)
            added["seed"] = store.add_labels(seed_set, round=0, source="seed")
        # A delivery answering round r's export is usable from round r + 1 on; round r
        # itself, if re-run, must still see those frames as the unlabeled ones it chose.
        for delivery in read_label_deliveries(exporter.inbox):
            added[f"vendor r{delivery.round_index}"] = store.add_labels(
                list(delivery.frame_ids), round=delivery.round_index + 1, source="vendor"
            )
    for source, count in added.items():
        if count:
            context.log.info(f"{count} new labels from {source}")
    labeled = [str(f) for f in store.labeled_frames()]
    without_truth = [f.frame_id for f in frame_source.frames_by_id(labeled) if not f.is_labeled]
    if without_truth:
        raise dg.Failure(
            f"{len(without_truth)} labeled frames (e.g. {without_truth[:3]}) have no annotations in the "
            f"{frame_source.kind} source at {frame_source.root}: add their annotation files to the source"
        )
    return dg.MaterializeResult(
        metadata={
            "labeled_frames": len(labeled),
            "labels_added": int(sum(added.values())),
            "added_by_source": dg.MetadataValue.json({k: int(v) for k, v in added.items()}),
            "label_mode": frame_source.label_mode,
        }
    )


def _seed_set(frames, count: int, seed: int) -> list[str]:
    """``count`` annotated train frames drawn reproducibly, as the initial labeled pool."""
    candidates = sorted(f.frame_id for f in frames if f.is_labeled and f.split == "train")
    if count > len(candidates):
        raise dg.Failure(
            f"seed_labeled={count} but the source has only {len(candidates)} annotated train frames; lower it"
        )
    rng = np.random.default_rng(derive_seed(seed, 0, "seed_set"))
    return sorted(candidates[i] for i in rng.choice(len(candidates), size=count, replace=False))


def _fingerprint(frame_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(frame_ids)).encode()).hexdigest()[:16]


@dg.asset(
    deps=[labeled_set],
    group_name=GROUP,
    kinds={"pytorch"},
    pool="gpu",
    description="The BEVFusion-like detector trained on the labeled set for the opening round; a versioned "
    "checkpoint whose version is stamped on every score it produces. mAP is measured on the val split.",
)
def detector(
    context: dg.AssetExecutionContext,
    config: DetectorConfig,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    exporter: VendorExporterResource,
) -> dg.MaterializeResult:
    shards = history.shards()
    round_index = opening_round(shards, exporter.outbox, context.run.tags)
    labeled = sorted(str(f) for f in history.open().labeled_frames())
    if not labeled:
        raise dg.Failure("no labeled frames to train on: materialize labeled_set (seed set or vendor deliveries)")
    fingerprint = _fingerprint(labeled)
    published = model_store.published_for_round(round_index)
    # Once a round's pool is drawn its detector is fixed: its shards are (being) scored by it.
    pool_drawn = shards.pool_manifest(round_index) is not None
    if published is not None and (pool_drawn or published.metrics.get("labeled_fingerprint") == fingerprint):
        context.log.info(f"round {round_index}: reusing detector {published.version}")
        return dg.MaterializeResult(metadata=_detector_metadata(published, round_index, len(labeled), reused=True))

    previous = model_store.published_for_round(round_index - 1) if round_index > 0 else None
    warm = previous if config.warm_start else None
    frames = frame_source.frames_by_id(labeled)
    started = time.perf_counter()
    checkpoint = model_store.train(
        frames,
        round_index,
        epochs=config.fine_tune_epochs if (warm is not None and config.fine_tune_epochs > 0) else config.epochs,
        seed=derive_seed(config.run_seed, round_index, "training"),
        init_checkpoint=warm.path if warm is not None else None,
        log=lambda epoch: context.log.info(
            f"round {round_index} training epoch {epoch.get('epoch')}: loss {epoch.get('loss', float('nan')):.3f} "
            f"({epoch.get('seconds', 0.0):.0f} s)"
        ),
    )
    training_s = time.perf_counter() - started
    model, version = model_store.load(checkpoint.path)
    held_out = sorted(
        (f for f in frame_source.read().frames if f.split == "val" and f.is_labeled), key=lambda f: f.frame_id
    )
    if config.max_eval_frames >= 0:
        held_out = held_out[: config.max_eval_frames]
    evaluation = model_store.evaluate(model, held_out) if held_out else {}
    metrics = {
        "mAP": float(evaluation.get("mAP", float("nan"))),
        "per_class_ap": {k: float(v) for k, v in dict(evaluation.get("per_class", {})).items()},
        "eval_frames": len(held_out),
        "labeled_fingerprint": fingerprint,
        "warm_start": warm.version if warm is not None else None,
        "train_metrics": {k: float(v) for k, v in dict(checkpoint.metrics).items() if isinstance(v, (int, float))},
    }
    published = PublishedModel(round_index, str(checkpoint.path), str(version), training_s, metrics)
    model_store.publish(published)
    return dg.MaterializeResult(metadata=_detector_metadata(published, round_index, len(labeled), reused=False))


def _detector_metadata(model: PublishedModel, round_index: int, labeled: int, *, reused: bool) -> dict:
    return {
        "round": round_index,
        "model_version": model.version,
        "checkpoint": dg.MetadataValue.path(model.path),
        "labeled_frames": labeled,
        "training_s": round(model.training_s, 2),
        "mAP_val": model.metrics.get("mAP", float("nan")),
        "per_class_ap": dg.MetadataValue.json(model.metrics.get("per_class_ap", {})),
        "reused_checkpoint": reused,
    }


@dg.asset(
    deps=[acquisition_history, detector],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="m = alpha*N unlabeled frames drawn without replacement with P proportional to exp(s~/T) over "
    "each frame's latest (historical) score (Gumbel-top-k), split into shards; round 0 may score the whole pool.",
)
def candidate_pool(
    context: dg.AssetExecutionContext,
    config: CandidatePoolConfig,
    history: AcquisitionHistoryResource,
    exporter: VendorExporterResource,
) -> dg.MaterializeResult:
    from ceal_pipeline.core.sampling import sample_candidate_pool

    if config.round_zero_mode not in ROUND_ZERO_MODES:
        raise dg.Failure(f"round_zero_mode {config.round_zero_mode!r}: use one of {ROUND_ZERO_MODES}")
    if config.shard_size < 1:
        raise dg.Failure(f"shard_size must be >= 1 frame, got {config.shard_size}")
    shards = history.shards()
    round_index = opening_round(shards, exporter.outbox, context.run.tags)
    manifest = shards.pool_manifest(round_index)
    if manifest is None:
        store = history.open()
        pool = store.unlabeled_pool()
        if len(pool) == 0:
            raise dg.Failure(f"round {round_index}: the unlabeled pool is empty: nothing is left to acquire")
        seed = derive_seed(config.run_seed, round_index, "candidate_pool")
        full_pool = round_index == 0 and config.round_zero_mode == "full_pool"
        parameters = {
            "seed": seed,
            "run_seed": config.run_seed,
            "temperature": config.temperature,
            "pool_fraction": config.pool_fraction,
            "pool_count": config.pool_count,
            "normalisation": config.normalisation,
            "prior": config.prior,
            "round_zero_mode": config.round_zero_mode,
            "full_pool": full_pool,
            "shard_size": config.shard_size,
            "unlabeled_frames": len(pool),
        }
        store.start_round(round_index, seed=seed, parameters=parameters)
        started = time.perf_counter()
        if full_pool:
            keys = pool.frame_keys
        else:
            drawn = sample_candidate_pool(
                pool.frame_keys,
                pool.scores,
                temperature=config.temperature,
                fraction=None if config.pool_count > 0 else config.pool_fraction,
                count=config.pool_count if config.pool_count > 0 else None,
                normalisation=config.normalisation,
                prior=_prior(config.prior),
                seed=seed,
            )
            # Sorted so shard contents depend on the pool, not on the draw order.
            keys = np.sort(np.asarray(drawn.frame_ids, dtype=np.int64))
        sampling_s = time.perf_counter() - started
        n_shards = -(-len(keys) // config.shard_size)
        store.save_candidate_pool(round_index, frame_keys=keys, n_shards=n_shards, seed=seed)
        saved = store.candidate_pool(round_index)
        # The manifest is written last: it is what marks the round as open for the sensors.
        manifest = shards.write_pool(
            round_index,
            [[str(f) for f in saved.shard(s)] for s in range(saved.n_shards)],
            {**parameters, "sampling_s": sampling_s},
        )
        reused = False
        scores_plot = histogram_markdown(
            pool.scores, title=f"round {round_index}: latest scores of the unlabeled pool", xlabel="score (nats)"
        )
    else:
        reused = True
        scores_plot = dg.MetadataValue.md("(pool reused: see this round's first materialization)")
    context.instance.add_dynamic_partitions(candidate_shards.name, manifest["partition_keys"])
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "pool_frames": manifest["frames"],
            "unlabeled_frames": manifest["unlabeled_frames"],
            "shards": manifest["shards"],
            "seed": manifest["seed"],
            "temperature": manifest["temperature"],
            "sampling_s": round(manifest["sampling_s"], 4),
            "reused_pool": reused,
            "historical_scores": scores_plot,
        }
    )


def _prior(value: str):
    """Config strings to the sampling prior: a named rule or a number."""
    try:
        return float(value)
    except ValueError:
        return value
