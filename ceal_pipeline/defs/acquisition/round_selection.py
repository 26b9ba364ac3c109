"""Assets that close a round: pruned_frames, selected_batch, vendor_export.

They run in the ``round_selection`` job, partitioned by ``acquisition_rounds``,
once every shard of the round is scored and merged. Re-running them for a round
gives the same selection (it is a pure function of the round's fresh scores)
and never a second export.
"""


import time

import dagster as dg
import numpy as np

from ceal_pipeline.core.round import round_ledger, select, selection_size
from ceal_pipeline.defs.acquisition.checks import EXPORT_CHECK, SELECTION_CHECK, check_export, check_selection
from ceal_pipeline.defs.acquisition.config import SelectionConfig, opened_round
from ceal_pipeline.defs.acquisition.explanation_views import bird_eye_view_markdown, top_frames_table
from ceal_pipeline.defs.acquisition.failures import permanent_failure, retry_when_busy
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown, ledger_markdown
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, parse_round_partition_key
from ceal_pipeline.defs.acquisition.round_inputs import require_published_pool, round_model, round_model_version
from ceal_pipeline.defs.acquisition.shard_scoring import merged_scores
from ceal_pipeline.defs.acquisition.tie_check import TIES_CHECK, check_selection_ties, tie_break_of
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    RunDefaultsResource,
    VendorExporterResource,
)
from ceal_pipeline.export import CorruptExport, ExportedFrame, PreLabels, export_files, frame_tasks

GROUP = "acquisition"


@dg.asset(
    deps=[merged_scores],
    partitions_def=acquisition_rounds,
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="Frames whose last m scores were each in the bottom q quantile of their round leave the "
    "unlabeled pool (recorded as prune events: reversible, history kept).",
)
@retry_when_busy
def pruned_frames(
    context: dg.AssetExecutionContext, history: AcquisitionHistoryResource, run_defaults: RunDefaultsResource
) -> dg.MaterializeResult:
    from ceal_pipeline.core.pruning import persistently_low

    round_index = parse_round_partition_key(context.partition_key)
    store = history.open()
    config = opened_round(store.round_parameters(round_index), run_defaults)  # the round's pruning rule
    newly = []
    if config.prune:
        events = store.recent_scores(config.prune_last_m, unlabeled_only=True)
        low = persistently_low(
            events.frame_ids, events.rounds, events.scores,
            last_m=config.prune_last_m, quantile=config.prune_quantile, floor=config.prune_floor,
        )
        already = {str(f) for f in store.pruned_frames().frame_ids}
        newly = sorted(str(f) for f in low if str(f) not in already)
        if newly:
            store.prune(
                newly, round=round_index,
                reason=f"persistently low: last {config.prune_last_m} scores in the bottom {config.prune_quantile:.0%} "
                "of their rounds",
            )
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "enabled": config.prune,
            "pruned_this_round": len(newly),
            "pruned_total": len(store.pruned_frames()),
            "examples": dg.MetadataValue.json(newly[:20]),
        }
    )


def round_selection_parameters(
    recorded: dict, config: SelectionConfig, defaults: RunDefaultsResource
) -> tuple[int, int]:
    """``(K, per-sequence cap)`` of a round: what the round recorded when it opened (so a
    sensor-launched selection uses the Launchpad's values), unless this run overrides them."""
    opened_with = opened_round(recorded, defaults)
    try:  # the Launchpad shows k 0 and cap -1: "the round's"
        return selection_size(opened_with.k, opened_with.per_sequence_cap, k=config.k if config.k > 0 else None,
                              per_sequence_cap=config.per_sequence_cap if config.per_sequence_cap >= 0 else None)
    except ValueError as exc:
        raise permanent_failure(str(exc)) from exc


def labeled_records(store, frame_source: FrameSourceResource) -> list:
    """The labeled set's FrameRecords as the detector trains on them (the vendor's boxes where delivered)."""
    from ceal_pipeline.export.vendor_boxes import with_delivered_labels

    labeled = sorted(str(f) for f in store.labeled_frames())
    return with_delivered_labels(frame_source.catalog().records(labeled), store.delivered_labels(labeled))


def selection_candidates(store, model_store: ModelStoreResource, round_index: int):
    """(frame ids, fresh scores) of the round's candidates: scored this round by the detector the
    round records (which of them may be bought is the select step's: core.round.select)."""
    fresh = store.round_scores(round_index, model_version=round_model_version(store, model_store, round_index))
    return np.asarray([str(f) for f in fresh.frame_ids], dtype=object), fresh.scores


#: Frames drawn in selected_batch's bird's-eye view (plus one camera thumbnail of the first).
BIRD_EYE_VIEW_FRAMES = 3

SELECTED_BATCH_DESCRIPTION = """The round's purchase from its freshly scored candidates by the round's selection \
method (core.selection: topk, class_balance, diversity, or both): K frames or as many as the money budget buys, at \
most per_sequence_cap per sequence; `decided_by` names the signal behind each pick; records the compute ledger with \
the estimated labeling cost. Metadata: `top_frames` says why each frame was bought, `bird_eye_view` shows the top \
frames' LiDAR and most uncertain boxes plus one camera image.

**The score** is the round's acquisition value in nats; with the default `localization_entropy`, a differential \
entropy of the MC-Dropout box samples, usually negative (a certain box scores the floor -25.5 nats). \
**Higher (less negative) = more worth labeling.** What the numbers mean: docs/ACQUISITION.md."""


@dg.asset(
    deps=[merged_scores, pruned_frames],
    partitions_def=acquisition_rounds,
    check_specs=[SELECTION_CHECK, TIES_CHECK],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description=SELECTED_BATCH_DESCRIPTION,
)
@retry_when_busy
def selected_batch(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    frame_source: FrameSourceResource,
    run_defaults: RunDefaultsResource,
) -> dg.MaterializeResult:
    from ceal_pipeline.defs.acquisition.selection_inputs import round_selection_policy, selection_signals

    round_index = parse_round_partition_key(context.partition_key)
    exchange = history.exchange()
    store = history.open()
    recorded = store.round_parameters(round_index)
    k, cap = round_selection_parameters(recorded, config, run_defaults)
    policy = round_selection_policy(opened_round(recorded, run_defaults), cap)
    if policy.budget.amount is not None:
        k = None  # the money decides how many frames are bought
    published = round_model(model_store, round_index)
    started = time.perf_counter()
    candidates, fresh_scores = selection_candidates(store, model_store, round_index)
    catalog = frame_source.catalog()
    without_embedding = []

    def stage_inputs(ids, scores, sequences):
        ids = [str(f) for f in ids]
        signals = selection_signals(
            ids, scores, [str(q) for q in sequences], explanations=exchange.explanations(round_index, ids),
            embeddings=exchange.embeddings(round_index, ids),
            labeled_records=labeled_records(store, frame_source) if policy.uses_class_balance else [],
            per_class_ap=dict(published.metrics.get("per_class_ap", {})), policy=policy,
        )
        without_embedding.append(signals.frames_without_embedding)
        return signals.candidates, signals.labeled_class_counts, signals.class_ap

    try:
        chosen = select(
            candidates, fresh_scores, k, round_index=round_index, label_rounds=store.label_rounds(),
            pruned={str(f) for f in store.pruned_frames().frame_ids},
            awaiting_labels=store.awaiting_labels(round_index),
            sequences_of=lambda ids: [str(q) for q in catalog.sequence_ids([str(f) for f in ids])],
            per_sequence_cap=cap, policy=policy, stage_inputs=stage_inputs,
        )
    except ValueError as exc:  # a configuration that cannot be met: retrying cannot heal it
        message = str(exc)
        raise permanent_failure(message if message.startswith(f"round {round_index}:") else
                                f"round {round_index}: {message}") from exc
    if not len(chosen.frame_ids):
        raise permanent_failure(f"round {round_index}: the budget of {policy.budget.amount} buys no frame (the "
                                "cheapest candidate costs more); raise round.budget.amount or lower the prices")
    chosen_ids, chosen_scores = [str(f) for f in chosen.frame_ids], [float(v) for v in chosen.scores]
    store.save_selection(round_index, chosen_ids, chosen_scores)
    selection_s = time.perf_counter() - started

    stats = exchange.round_stats(require_published_pool(exchange, round_index))
    ledger = round_ledger(
        round_index,
        unlabeled_frames=int(recorded.get("unlabeled_frames", 0)),  # chosen from
        shards=[(s.frames, s.forward_passes, s.scoring_s) for s in stats],
        training_s=published.training_s,
        selection_s=selection_s + (store.candidate_pool(round_index).sampling_s or 0.0),
        estimated_label_cost=float(chosen.stage.estimated_cost or 0.0),
    )
    store.record_ledger(round_index, ledger)
    explanations = exchange.explanations(round_index, chosen_ids)
    shown = chosen_ids[:BIRD_EYE_VIEW_FRAMES]
    summary = chosen.stage.summary()
    return dg.MaterializeResult(
        check_results=[
            check_selection(history, round_index, published.version, len(chosen_ids) if k is None else k),
            check_selection_ties(store, round_index, chosen.eligible_ids, chosen.eligible_scores,
                                 decided_by=tie_break_of(chosen.stage)),
        ],
        metadata={
            "round": round_index,
            "k": len(chosen_ids),
            "per_sequence_cap": cap,
            "selection_method": policy.method,
            "decided_by": summary["decided_by"],
            "decided_by_counts": dg.MetadataValue.json(summary["decided_by_counts"]),
            "estimated_label_cost": float(chosen.stage.estimated_cost or 0.0),
            "selection": dg.MetadataValue.json({
                **summary, "frames_without_embedding": sum(without_embedding),
                "decided_by_frame": dict(zip(chosen_ids, chosen.stage.decided_by)),
            }),
            "candidates": chosen.eligible,
            "sequences": len(set(chosen.sequences)),
            "model_version": published.version,
            "top_frames": top_frames_table(chosen_ids, chosen_scores, list(chosen.sequences), explanations,
                                           limit=20, in_given_order=True),
            "bird_eye_view": bird_eye_view_markdown(
                catalog.records(shown), chosen_scores[: len(shown)], explanations,
                title=f"round {round_index}: the {len(shown)} top frames bought, and why",
            ),
            "frames_explained": len(explanations),
            "frames_at_no_detection_floor": sum(1 for e in explanations.values() if e.at_empty_floor),
            "compute_ledger": ledger_markdown(ledger),
            "ledger": dg.MetadataValue.json(ledger),
            "scores_vs_selected": histogram_markdown(
                chosen.eligible_scores, highlight=chosen_scores, title=f"round {round_index}: candidates and selection",
                xlabel="score (nats; higher = more worth labeling)", labels=("candidates", "selected"),
            ),
        }
    )


@dg.asset(
    deps=[selected_batch],
    partitions_def=acquisition_rounds,
    check_specs=[EXPORT_CHECK],
    group_name=GROUP,
    kinds={"csv", "json"},
    pool="duckdb",
    description="The selected frames for the labeling vendor, written atomically into the outbox, exactly "
    "once per round: ids as CSV and JSONL, why each was bought (explanations.jsonl: detections per class, the "
    "most uncertain objects with their MC spread, the aggregate, the no-detection floor flag; scores in nats), "
    "a versioned project manifest (class ontology, label specification, URI rule), one task per frame (sensor "
    "URIs, camera intrinsics/extrinsics with lens model, timestamp, ego pose, the detector's boxes as "
    "pre-labels) as project JSON, ASAM OpenLABEL 1.0 scenes and an mmdet3d info file, and a manifest with the "
    "sha256 of each file. The external id of every task is the frame id.",
)
@retry_when_busy
def vendor_export(
    context: dg.AssetExecutionContext,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    frame_source: FrameSourceResource,
    exporter: VendorExporterResource,
    run_defaults: RunDefaultsResource,
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    store = history.open()
    stored = store.selection(round_index)
    frame_ids, scores = [str(f) for f in stored.frame_ids], stored.scores
    if not frame_ids:
        raise permanent_failure(
            f"round {round_index} has no selection; materialize selected_batch for partition {context.partition_key} "
            "first"
        )
    catalog = frame_source.catalog()
    sequences = [str(q) for q in catalog.sequence_ids(frame_ids)]
    explanations = history.exchange().explanations(round_index, frame_ids)
    rows = [
        ExportedFrame(str(f), s, float(v), explanation=e.to_record() if (e := explanations.get(f)) else None)
        for f, s, v in zip(frame_ids, sequences, scores)
    ]
    published = round_model(model_store, round_index)
    version = published.version
    files = None
    if exporter.exported(round_index) is None:  # exactly once: a drop already written is never rebuilt
        files = vendor_files(context, round_index, published, frame_ids, catalog, frame_source, model_store, exporter)
    cost = estimated_label_cost(opened_round(store.round_parameters(round_index), run_defaults), frame_ids,
                                explanations)
    export = exporter.export(round_index, version, rows, run_id=context.run.run_id, files=files,
                             manifest_facts={"estimated_label_cost": cost})
    store.record_export(
        round_index, export.folder, list(export.frame_ids),
        manifest={"model_version": export.model_version, "sha256": export.sha256},
    )
    if not export.created:
        context.log.info(f"round {round_index} was already exported to {export.folder}; nothing sent again")
    try:
        check = check_export(exporter.exported(round_index), [str(f) for f in frame_ids], round_index, version)
    except (CorruptExport, FileNotFoundError) as exc:
        check = dg.AssetCheckResult(
            check_name=EXPORT_CHECK.name, asset_key=EXPORT_CHECK.asset_key, passed=False,
            metadata={"problems": dg.MetadataValue.json([str(exc)])},
        )
    return dg.MaterializeResult(
        check_results=[check],
        metadata={
            "round": round_index,
            "frames": export.count,
            "new_export": export.created,
            "folder": dg.MetadataValue.path(str(export.folder)),
            "frames_explained": sum(1 for row in rows if row.explanation is not None),
            "estimated_label_cost": cost["total"],
            "model_version": export.model_version,
            "sha256": dg.MetadataValue.json(export.sha256),
        }
    )


def estimated_label_cost(parameters, frame_ids: list[str], explanations: dict) -> dict:
    """The exported batch's price under the round's price list (``parameters``: the round's
    ``RoundSection``): per frame, plus per cuboid as estimated by each frame's detections (the
    pre-labels the vendor will correct)."""
    from ceal_pipeline.defs.acquisition.selection_inputs import round_labeling_budget

    budget = round_labeling_budget(parameters)
    cuboids = np.asarray([explanations[f].n_detections if f in explanations else 0 for f in frame_ids], float)
    return {
        "total": float(budget.frame_costs(cuboids, len(frame_ids)).sum()),
        "frames": len(frame_ids), "estimated_cuboids": int(cuboids.sum()),
        "price_per_frame": budget.price_per_frame, "price_per_cuboid": budget.price_per_cuboid,
        "budget": budget.amount,
    }


def vendor_files(context, round_index, published, frame_ids, catalog, frame_source, model_store, exporter) -> dict:
    """The vendor-facing files of the round's drop (see :mod:`ceal_pipeline.export.vendor_formats`)."""
    records = catalog.records(frame_ids)
    pre_labels = {}
    if exporter.pre_labels:
        model, _ = model_store.load(published.path)
        for record, (boxes, names, confidences) in zip(records, model_store.predict(model, records)):
            pre_labels[record.frame_id] = PreLabels(boxes, names, confidences)
        context.log.info(f"round {round_index}: {sum(len(p.boxes) for p in pre_labels.values())} pre-labels from "
                         f"detector {published.version}")
    uris = exporter.uri_rule(frame_source.root)
    if uris.local_uri_warning():
        context.log.warning(f"round {round_index}: {uris.local_uri_warning()}")
    try:
        return export_files(round_index, published.version, frame_tasks(records, uris, pre_labels), uris,
                            formats=exporter.formats)
    except ValueError as exc:  # a sensor file outside the dataset root: configuration, not transient
        raise dg.Failure(f"round {round_index}: {exc}", allow_retries=False) from exc
