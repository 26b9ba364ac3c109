"""candidate_scores (one GPU step per shard) and round_scores (the single-writer merge).

Each ``candidate_scores`` partition scores its shard's frames with MC-Dropout
localization entropy using the round's detector and writes one Parquet file; it
never opens DuckDB, so any number of GPU workers can run at once. A shard already
scored by the round's model is skipped, so re-running a killed round scores only
the missing shards. ``round_scores`` then ingests every shard into the history
(idempotently, keyed by round and shard) and refuses to run while any is missing.
"""


import time

import dagster as dg
import numpy as np

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.defs.acquisition.checks import HISTORY_CHECK, check_history
from ceal_pipeline.defs.acquisition.config import CandidateScoresConfig
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown, top_frames_markdown
from ceal_pipeline.defs.acquisition.partitions import candidate_shards
from ceal_pipeline.defs.acquisition.round_opening import candidate_pool, detector
from ceal_pipeline.defs.acquisition.rounds import current_round
from ceal_pipeline.defs.acquisition.shard_store import ShardStats, parse_shard_partition_key, shard_partition_key
from ceal_pipeline.defs.resources import AcquisitionHistoryResource, FrameSourceResource, ModelStoreResource

GROUP = "acquisition"
ACQUISITION_FN = "localization_entropy"


def round_model(model_store: ModelStoreResource, round_index: int):
    """The detector that scores (and whose scores select) round ``round_index``."""
    model = model_store.published_for_round(round_index)
    if model is None:
        raise dg.Failure(
            f"round {round_index} has no trained detector in {model_store.model_dir}; "
            "materialize the detector asset (job nightly_acquisition) for this round first"
        )
    return model


@dg.asset(
    deps=[candidate_pool, detector],
    partitions_def=candidate_shards,
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    pool="gpu",
    description="One shard of the candidate pool scored with MC-Dropout localization entropy (nats) by the "
    "round's detector; writes one Parquet shard of score events. Skips a shard already scored by that model.",
)
def candidate_scores(
    context: dg.AssetExecutionContext,
    config: CandidateScoresConfig,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    frame_source: FrameSourceResource,
) -> dg.MaterializeResult:
    round_index, shard_index = parse_shard_partition_key(context.partition_key)
    shards = history.shards()
    published = round_model(model_store, round_index)
    existing = shards.stats(round_index, shard_index)
    if existing is not None and existing.model_version == published.version and not config.rescore_existing:
        context.log.info(f"{context.partition_key}: already scored by {published.version}; nothing to do")
        return dg.MaterializeResult(
            metadata={"round": round_index, "shard": shard_index, "frames": existing.frames, "skipped": True}
        )

    frame_ids = shards.shard_frames(round_index, shard_index)
    frames = frame_source.frames_by_id(frame_ids)
    model, version = model_store.load(published.path)
    if str(version) != published.version:
        raise dg.Failure(
            f"{published.path} holds detector {version} but round {round_index} published {published.version}; "
            "re-materialize the detector asset"
        )
    seed = derive_seed(config.run_seed, round_index, f"mc_dropout/{context.partition_key}")
    started = time.perf_counter()
    scored = model_store.score(
        model,
        frames,
        mc_passes=config.mc_passes,
        mode=config.mode,
        seed=seed,
        aggregate=config.aggregate,
        batch_size=config.batch_size,
    )
    scoring_s = time.perf_counter() - started
    scores = np.asarray(scored.scores, dtype=np.float64)
    if list(scored.frame_ids) != frame_ids:
        raise dg.Failure(f"{context.partition_key}: the scorer returned frames in another order or set than asked")
    bad = [f for f, s in zip(frame_ids, scores) if not np.isfinite(s)]
    if bad:
        raise dg.Failure(f"{context.partition_key}: non-finite scores for {len(bad)} frames, e.g. {bad[:5]}")

    from ceal_pipeline.core.history import write_score_shard

    stats = ShardStats(
        round_index=round_index,
        shard_index=shard_index,
        model_version=published.version,
        frames=len(frame_ids),
        forward_passes=int(scored.forward_passes),
        scoring_s=scoring_s,
        run_id=context.run.run_id,
    )
    # Stats first, Parquet last: the Parquet file is the shard's commit marker.
    shards.write_stats(stats)
    write_score_shard(
        shards.scores_path(round_index, shard_index),
        frame_ids,
        scores,
        round=round_index,
        shard=shard_index,
        model_version=published.version,
        acquisition_fn=ACQUISITION_FN,
        run_id=context.run.run_id,
    )
    sequences = [f.sequence_id for f in frames]
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "shard": shard_index,
            "frames": len(frame_ids),
            "forward_passes": stats.forward_passes,
            "scoring_s": round(scoring_s, 3),
            "s_per_frame": round(scoring_s / max(1, len(frame_ids)), 4),
            "model_version": published.version,
            "mc_seed": seed,
            "mean_score": float(scores.mean()),
            "skipped": False,
            "top_frames": top_frames_markdown(frame_ids, scores, sequences, title="highest localization entropy"),
            "path": dg.MetadataValue.path(str(shards.scores_path(round_index, shard_index))),
        }
    )


def missing_shard_keys(history: AcquisitionHistoryResource, model_store: ModelStoreResource, round_index: int) -> list[str]:
    """Partition keys of the round's shards not yet scored by the round's detector."""
    published = model_store.published_for_round(round_index)
    version = published.version if published is not None else None
    return [shard_partition_key(round_index, s) for s in history.shards().missing_shards(round_index, version)]


@dg.asset(
    deps=[candidate_scores],
    check_specs=[HISTORY_CHECK],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="The round's candidate_scores shards merged into the acquisition history by its single "
    "writer; ingest is keyed by (round, shard), so a shard ingested twice changes nothing.",
)
def round_scores(
    context: dg.AssetExecutionContext, history: AcquisitionHistoryResource, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    shards = history.shards()
    round_index = current_round(shards, context.run.tags)
    missing = missing_shard_keys(history, model_store, round_index)
    if missing:
        raise dg.Failure(
            f"round {round_index}: {len(missing)} shards are not scored by the round's detector yet "
            f"({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}); materialize those candidate_scores "
            "partitions (the candidate_shards_sensor does it when the daemon runs)"
        )
    store = history.open()
    manifest = shards.require_pool(round_index)
    # One transaction for the whole round: all shards or none, one catalog scan.
    results = store.ingest_score_shards(
        {shard_index: shards.scores_path(round_index, shard_index) for shard_index in range(manifest["shards"])},
        round=round_index,
    )
    ingested = sum(result.n_events for result in results if result.ingested)
    already = sum(1 for result in results if not result.ingested)
    round_stats = shards.round_stats(round_index)
    scores = store.round_scores(round_index, model_version=round_model(model_store, round_index).version).scores
    return dg.MaterializeResult(
        check_results=[check_history(store)],
        metadata={
            "round": round_index,
            "shards": manifest["shards"],
            "score_events_ingested": ingested,
            "shards_already_ingested": already,
            "frames_scored": sum(s.frames for s in round_stats),
            "forward_passes": sum(s.forward_passes for s in round_stats),
            "scoring_s": round(sum(s.scoring_s for s in round_stats), 3),
            "score_distribution": histogram_markdown(
                scores, title=f"round {round_index}: fresh scores of the candidate pool", xlabel="score (nats)"
            ),
        }
    )
