"""Assets that open a round: frame_catalog, acquisition_history, labeled_set, detector, candidate_pool.

They run in the ``nightly_acquisition`` job, partitioned by ``acquisition_rounds``:
the round is ``context.partition_key`` (the catalog and the history are shared by
every round and not partitioned). A round opened before and not yet exported is
resumed, not redrawn: the same detector checkpoint and the same candidate pool
(stored in the history) are reused. Each asset reads, calls the core, writes and
returns metadata.
"""


from collections import Counter

import dagster as dg
import numpy as np

from ceal_pipeline.core import round as algorithm
from ceal_pipeline.core.history.errors import RoundConflict
from ceal_pipeline.core.round_opening import RoundNotDrawable, open_round
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.defs.acquisition.buyable import pool_k_shortfall
from ceal_pipeline.defs.acquisition.config import (
    CandidatePoolConfig,
    DetectorConfig,
    as_recorded,
    detector_training,
    opened_round,
    round_parameters,
)
from ceal_pipeline.defs.acquisition.detector_training import train_round_detector
from ceal_pipeline.defs.acquisition.failures import permanent_failure, retry_when_busy
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown, training_markdown
from ceal_pipeline.defs.acquisition.metadata_notes import (
    labeled_frames_last_round,
    labeled_growth_metadata,
    map_val_value,
    parameters_against_ceal_yaml,
)
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
    RunDefaultsResource,
    VendorExporterResource,
)
from ceal_pipeline.export.label_ingest import ingest_inbox

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
    "(key, id, sequence) and quarantined frames registered (idempotently), the append-only score events and "
    "each frame's latest "
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
    table = catalog.table(["frame_id", "sequence_id", "split"])
    train = table.filter(pc.equal(table.column("split"), "train"))
    frame_ids = train.column("frame_id").to_numpy(zero_copy_only=False)
    registered = store.register_frame_arrays(
        frame_ids=frame_ids, sequence_ids=train.column("sequence_id").to_numpy(zero_copy_only=False))
    # The catalog owns "cannot be read": new problems are quarantined, frames read again are released.
    unreadable = catalog.quarantined()
    quarantined = store.quarantine(unreadable)
    released = store.release_readable_frames(frame_ids, [q.frame_id for q in unreadable])
    pool = store.unlabeled_pool()
    return dg.MaterializeResult(
        metadata={
            "frames": store.frame_count(),
            "frames_added": int(registered.added),
            "frames_already_registered": int(registered.already_registered),
            "quarantined_added": int(quarantined),
            "released_from_quarantine": len(released),
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
    run_defaults: RunDefaultsResource,
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
                price = delivery_price(opened_round(store.round_parameters(item.delivery.round_index), run_defaults),
                                       item.result)
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
            **labeled_growth_metadata(len(labeled), labeled_frames_last_round(context.instance, round_index), added),
            "label_mode": frame_source.label_mode,
            "round": round_index,
            "rejected_deliveries": dg.MetadataValue.json({str(r.path): r.reason for r in rejected}),
            "delivered_frames": len(delivered),
            "delivery_cost": dg.MetadataValue.json(delivery_costs),
        }
    )


def delivery_price(parameters, result) -> float:
    """A delivery's actual labeling cost: its frames and cuboids at the price list the answered
    round recorded (``parameters``: that round's ``RoundSection``)."""
    from ceal_pipeline.defs.acquisition.selection_inputs import round_labeling_budget

    return round_labeling_budget(parameters).price(result.frames_added, result.boxes_added)


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
    run_defaults: RunDefaultsResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    config = detector_training(config, run_defaults)
    store = history.open()
    labeled = sorted(str(f) for f in store.labeled_frames())
    if not labeled:
        raise permanent_failure("no labeled frames to train on: materialize labeled_set (seed set or vendor deliveries)")
    fingerprint = algorithm.labeled_fingerprint(labeled)
    published = model_store.published_for_round(round_index)
    previous = model_store.published_for_round(round_index - 1) if round_index > 0 else None
    plan = algorithm.plan_training(
        published=published.metrics if published is not None else None,
        pool_drawn=store.has_candidate_pool(round_index), fingerprint=fingerprint, has_previous=previous is not None,
        warm_start=config.warm_start, epochs=config.epochs, fine_tune_epochs=config.fine_tune_epochs,
    )
    if plan.reuse:
        context.log.info(f"round {round_index}: reusing detector {published.version}")
        return dg.MaterializeResult(metadata=_detector_metadata(published, round_index, len(labeled), reused=True))

    published = train_round_detector(
        model_store, frame_source.catalog(), store, round_index, labeled, plan,
        warm_from=previous if plan.warm_start else None, seed=derive_seed(config.run_seed, round_index, "training"),
        fingerprint=fingerprint, max_eval_frames=config.max_eval_frames, log=context.log.info,
    )
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
        "mAP_val": map_val_value(model.metrics.get("mAP", float("nan")), int(model.metrics.get("eval_frames", 0)),
                                 model.metrics.get("max_eval_frames")),
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
    run_defaults: RunDefaultsResource,
    frame_source: FrameSourceResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    try:
        config = round_parameters(config, run_defaults)
    except ValueError as exc:  # pydantic's ValidationError: a bound or a prior the schema refuses
        raise permanent_failure(f"round {round_index}: candidate_pool config: {exc}") from exc
    published_model = round_model(model_store, round_index)
    store = history.open()
    # K is checked when the round opens, before anything is recorded, not hours later at selection
    # (a money budget buys what it can, so it has no K to meet).
    shortfall = None if config.budget.amount is not None else (
        lambda members: pool_k_shortfall(store, frame_source, round_index, members, config.k, config.per_sequence_cap))
    try:
        opened = open_round(store, round_index, as_recorded(config), published_model.version, shortfall=shortfall)
    except (RoundNotDrawable, RoundConflict) as exc:  # a retry draws the same pool: permanent
        message = str(exc)
        raise permanent_failure(message if message.startswith(f"round {round_index}:") else
                                f"round {round_index}: {message}") from exc
    saved, recorded = opened.pool, opened.parameters
    exchange = history.exchange()
    # Published after the history's commit, and again whenever it is missing or stale.
    published = exchange.sync_pool(round_index, saved, published_model.version, recorded)
    context.instance.add_dynamic_partitions(candidate_shards.name, published.partition_keys)
    differing = parameters_against_ceal_yaml(context, round_index, recorded, as_recorded(run_defaults.round))
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "round_parameters": dg.MetadataValue.json(recorded),
            "differs_from_ceal_yaml": dg.MetadataValue.json(differing),
            "pool_frames": len(saved),
            "unlabeled_frames": int(recorded.get("unlabeled_frames", 0)),
            "shards": saved.n_shards,
            "seed": saved.seed,
            "temperature": float(recorded.get("temperature", config.temperature)),
            "full_pool": bool(recorded.get("full_pool", False)),
            "sampling_s": round(float(saved.sampling_s or 0.0), 4),
            "reused_pool": opened.reused,
            "model_version": published_model.version,
            "pool_file": dg.MetadataValue.path(str(exchange.pool_path(round_index))),
            "historical_scores": histogram_markdown(
                opened.unlabeled_scores, title=f"round {round_index}: latest scores of the unlabeled pool",
                xlabel="score (nats)",
            ) if opened.unlabeled_scores is not None else dg.MetadataValue.md(
                "(pool reused: see this round's first materialization)"),
        }
    )
