"""Assets that open a round: frame_catalog, acquisition_history, labeled_set, detector, candidate_pool.

They run in the ``nightly_acquisition`` job, partitioned by ``acquisition_rounds``:
the round is ``context.partition_key`` (the catalog and the history are shared by
every round and not partitioned). A round opened before and not yet exported is
resumed, not redrawn: the same detector checkpoint and the same candidate pool
(stored in the history) are reused. Each asset reads, calls the core, writes and
returns metadata.
"""


import hashlib
import time
from collections import Counter

import dagster as dg
import numpy as np

from ceal_pipeline.core import round as algorithm
from ceal_pipeline.core.history.errors import RoundConflict
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, DetectorConfig, recorded_round_config
from ceal_pipeline.defs.acquisition.failures import permanent_failure, retry_when_busy
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown, training_markdown
from ceal_pipeline.defs.acquisition.partitions import (
    acquisition_rounds,
    candidate_shards,
    parse_round_partition_key,
)
from ceal_pipeline.defs.acquisition.round_inputs import round_model
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    PublishedModel,
    VendorExporterResource,
)
from ceal_pipeline.export.label_ingest import ingest_inbox
from ceal_pipeline.export.vendor_boxes import with_delivered_labels

GROUP = "acquisition"


@dg.asset(
    group_name="catalog",
    kinds={"parquet"},
    description="The columnar frame catalog (Parquet, one row per frame: ids, sequence, time, split, sensor "
    "paths with calibration, ego pose, annotation reference, content fingerprint; boxes in a sibling table), "
    "ingested incrementally from the configured source: only new or changed source files are parsed, and "
    "frames that disappear or change are reported. The only step that reads the source.",
)
@retry_when_busy
def frame_catalog(context: dg.AssetExecutionContext, frame_source: FrameSourceResource) -> dg.MaterializeResult:
    from ceal_pipeline.catalog.manifest import CatalogFormatError
    from ceal_pipeline.frames.synthetic import ForeignDataFolder, SyntheticDatasetMismatch

    try:
        report = frame_source.ingest()
    except (ForeignDataFolder, SyntheticDatasetMismatch, CatalogFormatError, OSError, ValueError) as exc:
        # The source as configured cannot be read: a retry reads the same files. (A catalog busy
        # with another ingest is waited out: retry_when_busy.)
        raise permanent_failure(
            f"frame_catalog: the {frame_source.kind} source at {frame_source.root} cannot be catalogued: {exc} "
            "(fix the data or source.* in ceal.yaml, then launch nightly_acquisition again)"
        ) from exc
    for warning in report.warnings:
        context.log.warning(warning)
    catalog = frame_source.catalog()
    columns = catalog.table(["split", "sequence_id", "labeled"])
    splits = Counter(columns.column("split").to_pylist())
    return dg.MaterializeResult(
        metadata={
            "frames": report.frames,
            "frames_added": report.frames_added,
            "frames_changed": report.frames_changed,
            "frames_removed": report.frames_removed,
            "source_files_parsed": report.units_parsed,
            "source_files_unchanged": report.units_skipped,
            "sequences": len(set(columns.column("sequence_id").to_pylist())),
            "splits": dg.MetadataValue.json(dict(splits)),
            "annotated_in_source": int(sum(columns.column("labeled").to_pylist())),
            "boxes": report.boxes,
            "quarantined": report.quarantined,
            "duplicates": report.duplicates,
            "unnamed_labels": dg.MetadataValue.json(report.to_dict()["unnamed_labels"]),
            "examples": dg.MetadataValue.json(report.examples),
            "warnings": dg.MetadataValue.json(report.warnings),
            "ingest_s": round(report.seconds, 3),
            "source": f"{frame_source.kind}:{frame_source.root}",
            "catalog": dg.MetadataValue.path(frame_source.catalog_dir),
        }
    )


@dg.asset(
    deps=[frame_catalog],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="The DuckDB acquisition history, the single store of round state: the catalog's train frames "
    "and quarantined frames registered (idempotently), the append-only score events and each frame's latest "
    "score, and per round its parameters, candidate pool and shards, selection and export.",
)
@retry_when_busy
def acquisition_history(
    context: dg.AssetExecutionContext,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
) -> dg.MaterializeResult:
    import pyarrow.compute as pc

    store = history.open()
    catalog = frame_source.catalog()
    # The frames CEAL may acquire: the catalog's train split (val frames are the held-out
    # set). Labels are labeled_set's business (per round); the history registers frames only.
    table = catalog.table(["frame_id", "sequence_id", "timestamp_s", "lidar_path", "split", "source"])
    train = table.filter(pc.equal(table.column("split"), "train"))
    registered = store.register_frame_arrays(
        frame_ids=train.column("frame_id").to_numpy(zero_copy_only=False),
        sequence_ids=train.column("sequence_id").to_numpy(zero_copy_only=False),
        timestamps=train.column("timestamp_s").to_numpy(zero_copy_only=False),
        lidar_paths=train.column("lidar_path").to_numpy(zero_copy_only=False),
        split="train",
        source=train.column("source").to_numpy(zero_copy_only=False),
    )
    quarantined = store.quarantine(catalog.quarantined())
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
    partitions_def=acquisition_rounds,
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="Frames with labels: the seed set plus what the vendor delivered (inbox/round-NNNN/, "
    "OpenLABEL or mmdet3d files), stored as boxes with provenance in the history; refused deliveries are "
    "recorded with the reason. With label_mode 'source' every frame annotated in the source counts as labeled.",
)
@retry_when_busy
def labeled_set(
    context: dg.AssetExecutionContext,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
    exporter: VendorExporterResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    store = history.open()
    added, rejected, delivery_costs = {}, [], {}
    catalog = frame_source.catalog()
    if frame_source.label_mode == "source":
        annotated = catalog.frame_ids(split="train", annotated=True)
        if len(annotated):
            added["source"] = store.add_labels(annotated, round=round_index, source="source")
    else:
        if len(store.labeled_frames()) == 0:
            annotated = catalog.frame_ids(split="train", annotated=True)  # a scan of the catalog: round 0 only
            try:
                seed_set = algorithm.seed_set(annotated, frame_source.seed_labeled, frame_source.synthetic_seed)
            except ValueError as exc:
                raise permanent_failure(f"labeled_set: {exc}") from exc
            added["seed"] = store.add_labels(seed_set, round=0, source="seed")
        # The vendor's deliveries (inbox/round-NNNN/), stored as boxes with provenance; a delivery
        # answering round r's export labels its frames from round r + 1 on (round r, if re-run,
        # must still see them as the unlabeled frames it chose). Refused files change nothing.
        ingested, rejected = ingest_inbox(store, exporter.inbox)
        for item in ingested:
            if item.result.frames_added:
                key = f"vendor r{item.delivery.round_index}"
                added[key] = added.get(key, 0) + item.result.frames_added
                # The actual price: frames and cuboids delivered, at the answered round's price list.
                price = delivery_price(store.round_parameters(item.delivery.round_index), item.result)
                delivery_costs[key] = delivery_costs.get(key, 0.0) + price
                context.log.info(f"delivery {item.delivery.path}: {item.result.frames_added} frames, "
                                 f"{item.result.boxes_added} cuboids, cost {price:g}")
        for rejection in rejected:
            verdict = "waits" if rejection.deferred else "rejected"
            context.log.warning(f"label delivery {rejection.path} {verdict}: {rejection.reason}")
    for source, count in added.items():
        if count:
            context.log.info(f"{count} new labels from {source}")
    labeled = [str(f) for f in store.labeled_frames()]
    # A lookup of the labeled frames' rows (thousands), not a scan of the catalog (millions).
    try:
        has_truth = catalog.table(["labeled"], frame_ids=labeled).column("labeled").to_pylist() if labeled else []
    except KeyError as exc:
        raise permanent_failure(
            f"labeled frames are no longer in the frame catalog ({exc}); restore them in the source and "
            "re-materialize frame_catalog, or, if they left the source for good, retire them: "
            "`ceal labels retire --missing-from-source --reason '...'` (docs/VENDOR.md)"
        ) from exc
    delivered = store.delivered_frame_ids()  # the vendor's boxes stand in for the source's annotations
    without_truth = [f for f, truth in zip(labeled, has_truth) if not truth and f not in delivered]
    if without_truth:
        raise permanent_failure(
            f"{len(without_truth)} labeled frames (e.g. {without_truth[:3]}) have no annotations in the "
            f"{frame_source.kind} source at {frame_source.root}: add their annotation files to the source"
        )
    return dg.MaterializeResult(
        metadata={
            "labeled_frames": len(labeled),
            "labels_added": int(sum(added.values())),
            "added_by_source": dg.MetadataValue.json({k: int(v) for k, v in added.items()}),
            "label_mode": frame_source.label_mode,
            "round": round_index,
            "rejected_deliveries": dg.MetadataValue.json({str(r.path): r.reason for r in rejected}),
            "delivered_frames": len(delivered),
            "delivery_cost": dg.MetadataValue.json(delivery_costs),
        }
    )


def delivery_price(recorded: dict, result) -> float:
    """A delivery's actual labeling cost: its frames and cuboids at the price list the answered round recorded."""
    from ceal_pipeline.defs.acquisition.selection_inputs import round_labeling_budget

    return round_labeling_budget(recorded_round_config(recorded)).price(result.frames_added, result.boxes_added)


def _fingerprint(frame_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(frame_ids)).encode()).hexdigest()[:16]


@dg.asset(
    deps=[labeled_set],
    partitions_def=acquisition_rounds,
    group_name=GROUP,
    kinds={"pytorch"},
    pool="gpu",
    description="The BEVFusion-like detector trained on the labeled set for the opening round; a versioned "
    "checkpoint whose version is stamped on every score it produces. mAP is measured on the val split; "
    "metadata plots the training loss per epoch and the per-class AP (BEV centre-distance, nuScenes thresholds).",
)
@retry_when_busy
def detector(
    context: dg.AssetExecutionContext,
    config: DetectorConfig,
    frame_source: FrameSourceResource,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    store = history.open()
    labeled = sorted(str(f) for f in store.labeled_frames())
    if not labeled:
        raise permanent_failure("no labeled frames to train on: materialize labeled_set (seed set or vendor deliveries)")
    fingerprint = _fingerprint(labeled)
    published = model_store.published_for_round(round_index)
    # Once a round's pool is drawn its detector is fixed: its shards are (being) scored by it.
    pool_drawn = store.has_candidate_pool(round_index)
    if published is not None and (pool_drawn or published.metrics.get("labeled_fingerprint") == fingerprint):
        context.log.info(f"round {round_index}: reusing detector {published.version}")
        return dg.MaterializeResult(metadata=_detector_metadata(published, round_index, len(labeled), reused=True))

    previous = model_store.published_for_round(round_index - 1) if round_index > 0 else None
    warm = previous if config.warm_start else None
    catalog = frame_source.catalog()
    # The training set is a query by id, boxes included; delivered frames carry the vendor's boxes.
    frames = with_delivered_labels(catalog.records(labeled), store.delivered_labels(labeled))
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
    held_out_ids = catalog.frame_ids(split="val", annotated=True)  # sorted
    if config.max_eval_frames >= 0:
        held_out_ids = held_out_ids[: config.max_eval_frames]
    held_out = catalog.records(held_out_ids) if len(held_out_ids) else []
    evaluation = model_store.evaluate(model, held_out) if held_out else {}
    metrics = {
        "mAP": float(evaluation.get("mAP", float("nan"))),
        "per_class_ap": {k: float(v) for k, v in dict(evaluation.get("per_class", {})).items()},
        "eval_frames": len(held_out),
        "labeled_fingerprint": fingerprint,
        "warm_start": warm.version if warm is not None else None,
        "train_metrics": {k: float(v) for k, v in dict(checkpoint.metrics).items() if isinstance(v, (int, float))},
        "loss_curve": [dict(epoch) for epoch in checkpoint.loss_curve],
    }
    published = PublishedModel(round_index, str(checkpoint.path), str(version), training_s, metrics)
    model_store.publish(published)
    return dg.MaterializeResult(metadata=_detector_metadata(published, round_index, len(labeled), reused=False))


def _detector_metadata(model: PublishedModel, round_index: int, labeled: int, *, reused: bool) -> dict:
    loss_curve = list(model.metrics.get("loss_curve", []))
    per_class_ap = dict(model.metrics.get("per_class_ap", {}))
    return {
        "round": round_index,
        "model_version": model.version,
        "checkpoint": dg.MetadataValue.path(model.path),
        "labeled_frames": labeled,
        "training_s": round(model.training_s, 2),
        "mAP_val": model.metrics.get("mAP", float("nan")),
        "per_class_ap": dg.MetadataValue.json(per_class_ap),
        "epochs_trained": len(loss_curve),
        "final_training_loss": float(loss_curve[-1]["loss"]) if loss_curve else float("nan"),
        "loss_curve": dg.MetadataValue.json(loss_curve),
        "training_and_ap": training_markdown(
            loss_curve, per_class_ap, title=f"detector {model.version}: training loss and val AP"
        ),
        "reused_checkpoint": reused,
    }


@dg.asset(
    deps=[acquisition_history, detector],
    partitions_def=acquisition_rounds,
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    pool="duckdb",
    description="m = alpha*N unlabeled frames drawn without replacement with P proportional to exp(s~/T) over "
    "each frame's latest (historical) score (Gumbel-top-k), split into shards and saved in the history; "
    "published as pool.parquet for the GPU shards. Round 0 may score the whole pool.",
)
@retry_when_busy
def candidate_pool(
    context: dg.AssetExecutionContext,
    config: CandidatePoolConfig,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    published_model = round_model(model_store, round_index)
    store = history.open()
    reused = store.has_candidate_pool(round_index)
    scores_plot = dg.MetadataValue.md("(pool reused: see this round's first materialization)")
    sampling_s = 0.0
    if not reused:
        pool = store.unlabeled_pool()
        # Every round parameter is recorded: the round's shards, selection and export read them
        # back (recorded_round_config), whoever launches those runs.
        parameters = {**config.model_dump(), "unlabeled_frames": len(pool)}
        started = time.perf_counter()
        try:
            drawn = algorithm.draw_candidate_pool(
                pool.frame_keys, pool.scores, round_index=round_index, run_seed=config.run_seed,
                temperature=config.temperature, fraction=config.pool_fraction,
                count=config.pool_count if config.pool_count > 0 else None,
                normalisation=config.normalisation, prior=_prior(config.prior), round_zero_mode=config.round_zero_mode,
            )
            n_shards = algorithm.shard_count(len(drawn), config.shard_size)
        except ValueError as exc:
            raise permanent_failure(f"round {round_index}: {exc}") from exc
        sampling_s = time.perf_counter() - started
        seed = drawn.seed if drawn.seed is not None else derive_seed(config.run_seed, round_index, "candidate_pool")
        try:
            store.start_round(round_index, seed=seed, parameters={**parameters, "seed": seed, "full_pool": drawn.backfill})
        except RoundConflict as exc:  # opened before with other parameters: its own are the ones to use
            raise permanent_failure(f"round {round_index}: {exc}") from exc
        store.save_candidate_pool(
            round_index, frame_keys=drawn.members, n_shards=n_shards, seed=seed, sampling_s=sampling_s
        )
        scores_plot = histogram_markdown(
            pool.scores, title=f"round {round_index}: latest scores of the unlabeled pool", xlabel="score (nats)"
        )
    saved = store.candidate_pool(round_index)
    recorded = store.round_parameters(round_index)
    exchange = history.exchange()
    # Published after the history's commit, and again whenever it is missing or stale.
    published = exchange.published_pool(round_index)
    if published is None or (published.frames, published.n_shards, published.model_version, published.parameters) != (
        len(saved), saved.n_shards, published_model.version, recorded
    ):
        published = exchange.publish_pool(
            round_index, saved.frame_ids, saved.shards, saved.n_shards, published_model.version, recorded
        )
    context.instance.add_dynamic_partitions(candidate_shards.name, published.partition_keys)
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "pool_frames": len(saved),
            "unlabeled_frames": int(recorded.get("unlabeled_frames", 0)),
            "shards": saved.n_shards,
            "seed": saved.seed,
            "temperature": float(recorded.get("temperature", config.temperature)),
            "full_pool": bool(recorded.get("full_pool", False)),
            "sampling_s": round(float(saved.sampling_s or 0.0), 4),
            "reused_pool": reused,
            "model_version": published_model.version,
            "pool_file": dg.MetadataValue.path(str(exchange.pool_path(round_index))),
            "historical_scores": scores_plot,
        }
    )


def _prior(value: str):
    """Config strings to the sampling prior: a named rule or a number."""
    try:
        return float(value)
    except ValueError:
        return value
