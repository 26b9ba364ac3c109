"""``AcquisitionHistory``: the DuckDB store behind CEAL's acquisition history.

One file holds everything a CEAL deployment must remember between rounds: the
frame catalog, labels, quarantined frames, the append-only score events with
each frame's latest score, and per round its seed and parameters, candidate
pool (sharded), selection, pruned frames, vendor export and compute ledger.

Design decisions (see each mixin's module for its part):

- **Short-lived connections.** Each public method opens the file, works, and
  closes it; DuckDB admits one writing process, and Dagster runs steps in
  separate processes (``connection.py``).
- **One transaction per write.** Every method that writes runs all its
  statements in one transaction, and validates before writing: bad input
  raises a :class:`HistoryError` naming the frames/file and the fix, and
  nothing is half-written.
- **Versioned schema.** ``schema.py`` migrates a fresh or older file to the
  latest version on open, in one transaction; a newer file is refused.
- **Frame ids are data.** They travel as bound parameters or registered numpy
  arrays, never inside SQL text; registration validates them against
  ``frames.records.FRAME_ID_PATTERN``.
- **Integer frame keys** inside, string ids outside: large tables reference
  frames by a BIGINT key; the unlabeled pool is returned as keys + scores so
  that the candidate-pool step at 10^7 frames reads two numeric columns
  (about 0.5 s) instead of 10^7 strings (several seconds).
- **Append-only score events; maintained latest score.** Events are never
  updated; each ingest advances ``frame_state.latest_score`` in the same
  transaction (``ingest.py``). Views ``score_event_log``, ``latest_scores``
  and ``latest_scores_from_events`` expose the design's shapes to SQL users.
- **Idempotent by key.** Registering known frames, re-ingesting a shard
  (round, shard), re-saving a round's pool or selection, re-recording an export
  are no-ops when the content is the same and errors when it differs.

Typical round (what the Dagster assets call)::

    history = AcquisitionHistory(".ceal/history.duckdb")
    history.register_frame_arrays(ids, sequences)          # acquisition_history
    history.start_round(r, seed=seed, parameters=config)
    pool = history.unlabeled_pool()                          # keys + latest scores
    drawn = sample_candidate_pool(pool.frame_keys, pool.scores, temperature=T, fraction=0.05, seed=seed)
    history.save_candidate_pool(r, frame_keys=drawn.frame_ids, n_shards=16, seed=seed)
    ids = history.candidate_pool(r, shard=k).frame_ids       # per partition, on a GPU worker
    write_score_shard(path_k, ids, scores, round=r, shard=k, ...)
    history.ingest_score_shards({k: path_k, ...}, round=r)  # merge; idempotent, one transaction
    fresh = history.round_scores(r)
    history.save_selection(r, chosen_ids, chosen_scores)     # selected_batch
    history.record_export(r, export_path, chosen_ids)        # vendor_export, once
    history.ingest_delivery(r, path=..., frame_ids=..., boxes=..., ...)  # labeled_set: the vendor's boxes
"""

from __future__ import annotations

from ceal_pipeline.core.history.frame_registry import FrameRegistry
from ceal_pipeline.core.history.deliveries import DeliveryStore
from ceal_pipeline.core.history.ingest import ScoreIngest
from ceal_pipeline.core.history.pools import PoolStore
from ceal_pipeline.core.history.pruned import PruningStore
from ceal_pipeline.core.history.rounds import RoundStore
from ceal_pipeline.core.history.scores import ScoresStore


class AcquisitionHistory(
    FrameRegistry, ScoreIngest, ScoresStore, PoolStore, PruningStore, RoundStore, DeliveryStore
):
    """The acquisition history in one DuckDB file at ``path``.

    Args:
        path: the ``.duckdb`` file; created and migrated on first use.
        threads: DuckDB worker threads (default: all cores).
        memory_limit: e.g. ``"2GB"`` (default: DuckDB's, 80% of RAM).
        migrate: apply pending migrations on construction (default True).
    """
