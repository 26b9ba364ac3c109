"""candidate_scores (one GPU step per shard) and merged_scores (the single-writer merge).

Each ``candidate_scores`` partition (``r0003-s007``) reads its frame list from
the round's published pool (only its own rows), scores the frames with
MC-Dropout localization entropy using the round's detector and writes one
Parquet file; it never opens DuckDB, so any number of GPU workers can run at
once. A shard already scored by the round's model is skipped, so re-running a
killed round scores only the missing shards. ``merged_scores`` (partition
``r0003``) then checks every shard's rows against the history's pool and the
round's detector and ingests them (idempotently, keyed by round and shard).
"""


import time

import dagster as dg
import numpy as np

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.defs.acquisition.checks import HISTORY_CHECK, check_history
from ceal_pipeline.defs.acquisition.config import (
    CandidateScoresConfig,
    opened_round,
    scoring_batch_size,
)
from ceal_pipeline.defs.acquisition.explanation_views import top_frames_table
from ceal_pipeline.defs.acquisition.failures import permanent_failure, retry_when_busy
from ceal_pipeline.defs.acquisition.metadata import histogram_markdown
from ceal_pipeline.defs.acquisition.partitions import (
    acquisition_rounds,
    candidate_shards,
    parse_round_partition_key,
    parse_shard_partition_key,
)
from ceal_pipeline.defs.acquisition.round_inputs import require_published_pool, round_model, round_model_version
from ceal_pipeline.defs.acquisition.round_opening import candidate_pool, detector
from ceal_pipeline.core.history.shards import PublishedPool, ShardExchange
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    RunDefaultsResource,
)

GROUP = "acquisition"


@dg.asset(
    deps=[candidate_pool, detector],
    partitions_def=candidate_shards,
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    pool="gpu",
    description="One shard of the candidate pool scored with MC-Dropout localization entropy (nats) by the "
    "round's detector; writes one Parquet shard of score events, each with why the frame scored so "
    "(detections per class, the 3 most uncertain objects with their MC spread, the aggregate, the "
    "no-detection floor flag). Skips a shard already scored by that model.",
)
def candidate_scores(
    context: dg.AssetExecutionContext,
    config: CandidateScoresConfig,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    frame_source: FrameSourceResource,
    run_defaults: RunDefaultsResource,
) -> dg.MaterializeResult:
    round_index, shard_index = parse_shard_partition_key(context.partition_key)
    exchange = history.exchange()
    published = round_model(model_store, round_index)
    pool = require_published_pool(exchange, round_index)
    if shard_index >= pool.n_shards:
        raise permanent_failure(
            f"{context.partition_key}: round {round_index}'s candidate pool has shards 0..{pool.n_shards - 1}"
        )
    existing = exchange.shard_stats(round_index, shard_index)
    if existing is not None and existing.model_version == published.version and not config.rescore_existing:
        context.log.info(f"{context.partition_key}: already scored by {published.version}; nothing to do")
        return dg.MaterializeResult(
            metadata={"round": round_index, "shard": shard_index, "frames": existing.frames, "skipped": True}
        )

    # What is computed is the round's (recorded when it opened, published with the pool), so
    # every shard scores alike, and the worker never opens the history.
    parameters = opened_round(pool.parameters, run_defaults)
    frame_ids = exchange.shard_frames(round_index, shard_index)
    frames = frame_source.catalog().records(frame_ids)  # only this shard's rows are read
    model, version = model_store.load(published.path)
    if str(version) != published.version:
        raise permanent_failure(
            f"{published.path} holds detector {version} but round {round_index} published {published.version}; "
            "re-materialize the detector asset"
        )
    seed = derive_seed(parameters.run_seed, round_index, f"mc_dropout/{context.partition_key}")
    started = time.perf_counter()
    scored = model_store.score(
        model,
        frames,
        mc_passes=parameters.mc_passes,
        mode=parameters.mc_mode,
        seed=seed,
        aggregate=parameters.aggregate,
        batch_size=scoring_batch_size(config, run_defaults),
        acquisition_fn=parameters.acquisition_fn,
    )
    scoring_s = time.perf_counter() - started
    scores = np.asarray(scored.scores, dtype=np.float64)
    if list(scored.frame_ids) != frame_ids:
        raise permanent_failure(f"{context.partition_key}: the scorer returned frames in another order or set than asked")
    bad = [f for f, s in zip(frame_ids, scores) if not np.isfinite(s)]
    if bad:
        raise permanent_failure(f"{context.partition_key}: non-finite scores for {len(bad)} frames, e.g. {bad[:5]}")

    from ceal_pipeline.core.history import write_score_shard

    explanations = scored.explanations()
    # The Parquet file is the shard's commit marker; its footer carries what scoring cost,
    # its explanation columns why each frame scored what it did.
    path = write_score_shard(
        exchange.scores_path(round_index, shard_index),
        frame_ids,
        scores,
        round=round_index,
        shard=shard_index,
        model_version=published.version,
        acquisition_fn=parameters.acquisition_fn,
        run_id=context.run.run_id,
        facts={"forward_passes": int(scored.forward_passes), "scoring_s": scoring_s},
        explanations=explanations,
        embeddings=getattr(scored, "embeddings", None),  # scorers that embed nothing write no column
        # A rank combination's terms: merged_scores ranks them over all of the round's shards.
        terms=getattr(scored, "terms_by_fn", {}).get(parameters.acquisition_fn),
        term_weights=getattr(scored, "term_weights_by_fn", {}).get(parameters.acquisition_fn),
    )
    sequences = [f.sequence_id for f in frames]
    return dg.MaterializeResult(
        metadata={
            "round": round_index,
            "shard": shard_index,
            "frames": len(frame_ids),
            "forward_passes": int(scored.forward_passes),
            "scoring_s": round(scoring_s, 3),
            "s_per_frame": round(scoring_s / max(1, len(frame_ids)), 4),
            "model_version": published.version,
            "mc_seed": seed,
            "mean_score": float(scores.mean()),
            "skipped": False,
            "acquisition_fn": parameters.acquisition_fn,
            "mc_passes": parameters.mc_passes,
            "frames_without_detections": sum(1 for e in explanations if e.n_detections == 0),
            "frames_at_no_detection_floor": sum(1 for e in explanations if e.at_empty_floor),
            "top_frames": top_frames_table(frame_ids, scores, sequences, dict(zip(frame_ids, explanations)),
                                           limit=10),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


def unscored_shard_keys(exchange: ShardExchange, pool: PublishedPool) -> list[str]:
    """Partition keys of the round's shards not yet scored by the round's detector."""
    return [pool.partition_keys[s] for s in exchange.unscored_shards(pool)]


@dg.asset(
    deps=[candidate_scores],
    partitions_def=acquisition_rounds,
    check_specs=[HISTORY_CHECK],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="duckdb",
    description="The round's candidate_scores shards, each checked row by row against the history's pool and "
    "the round's detector, merged into the acquisition history by its single writer; ingest is keyed by "
    "(round, shard), so a shard ingested twice changes nothing.",
)
@retry_when_busy
def merged_scores(
    context: dg.AssetExecutionContext, history: AcquisitionHistoryResource, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    exchange = history.exchange()
    pool = require_published_pool(exchange, round_index)
    missing = unscored_shard_keys(exchange, pool)
    if missing:
        raise permanent_failure(
            f"round {round_index}: {len(missing)} shards are not scored by the round's detector yet "
            f"({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}); materialize those candidate_scores "
            "partitions (the candidate_shards_sensor does it when the daemon runs)"
        )
    store = history.open()
    version = round_model_version(store, model_store, round_index)
    # One transaction for the whole round: all shards or none, one catalog scan; rows are
    # checked against the history's pool and the round's detector, not against side files.
    results = store.ingest_score_shards(
        exchange.score_paths(round_index, range(pool.n_shards)), round=round_index, model_version=version
    )
    ingested = sum(result.n_events for result in results if result.ingested)
    already = sum(1 for result in results if not result.ingested)
    round_stats = exchange.round_stats(pool)
    scores = store.round_scores(round_index, model_version=version).scores
    ranked = any(stats.term_weights for stats in round_stats)
    return dg.MaterializeResult(
        check_results=[check_history(store)],
        metadata={
            "round": round_index,
            "shards": pool.n_shards,
            "score_events_ingested": ingested,
            "shards_already_ingested": already,
            "frames_scored": sum(s.frames for s in round_stats),
            "forward_passes": sum(s.forward_passes for s in round_stats),
            "scoring_s": round(sum(s.scoring_s for s in round_stats), 3),
            "ranked_over_all_shards": ranked,
            "score_distribution": histogram_markdown(
                scores, title=f"round {round_index}: fresh scores of the candidate pool",
                xlabel="weighted rank among the round's candidates" if ranked else "score (nats)",
            ),
        }
    )
