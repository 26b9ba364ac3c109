"""Writing score events: from arrays or Parquet shards, atomically and idempotently.

Score events are append-only: an ingest adds one ``score_batches`` row per
shard (or in-memory batch) and its ``score_events``, and never updates or
deletes an event. In the same transaction it advances each scored frame's
maintained latest score in ``frame_state`` (newest round wins; within a round,
the newest batch), so the candidate-pool step reads 10^7 latest scores with one
narrow scan instead of aggregating 10^8 events.

Ingest is idempotent on ``(round, shard)``: a second ingest of the same scores
is a documented no-op (``IngestResult.ingested`` is False); different scores
under the same key are refused (a shard is immutable once ingested; the
comparison uses an order-independent fingerprint, the sum of
``hash(frame_id, score)``, plus the count, model version and acquisition
function). When the round has a saved candidate pool, a shard must score exactly
the frames of that pool shard, so a stale or mixed-up file cannot slip in.

Resolving frame ids to keys scans the whole catalog once (about a second at
10^7 frames) whatever the shard size, so :meth:`ScoreIngest.ingest_score_shards`
merges all of a round's shards in one transaction and one scan.

Shards of a rank combination (their ``term_<name>`` columns, see
:mod:`.shards`) are ranked together: the merge of a round's shards replaces each
shard's within-shard ranks by :func:`~ceal_pipeline.core.ranks.rank_normalised_combination`
of the terms over all of them, so a frame's value is its place among all of the
round's candidates, and refuses to ingest some of such a round's shards alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import InvalidScores, ShardConflict, ShardFileError, describe_frames
from ceal_pipeline.core.history.shards import TERM_PREFIX, load_score_shard, rescore_hint
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    as_score_array,
    require_finite,
    require_index,
    require_present,
    require_unique,
    resolve_frame_keys,
    stage,
)
from ceal_pipeline.core.ranks import rank_normalised_combination

_NOT_FINITE = "score IS NULL OR isnan(score) OR isinf(score)"


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one score ingest. ``ingested`` is False when this ``(round,
    shard)`` was already ingested with the same scores (nothing was written)."""

    round: int
    shard: int | None
    batch_id: int
    n_events: int
    ingested: bool


@dataclass(frozen=True)
class _StagedBatch:
    """One batch of scores staged in the temporary table ``table`` (pos, frame_id, score)."""

    what: str
    shard: int | None
    provenance: dict
    source_path: str | None
    table: str


class ScoreIngest(HistoryConnection):
    """Appending score events (mixed into :class:`AcquisitionHistory`)."""

    def record_scores(
        self,
        frame_ids: Sequence[str] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        *,
        round: int,
        model_version: str,
        acquisition_fn: str,
        run_id: str,
        shard: int | None = None,
        scored_at: datetime | None = None,
    ) -> IngestResult:
        """Append score events from arrays (one finite score per frame id).

        With ``shard`` given this is idempotent on ``(round, shard)`` like
        :meth:`ingest_score_shard`; without it every call appends a new batch
        (e.g. the round-0 backfill done in one process).

        Raises:
            InvalidScores, UnknownFrames, DuplicateFrames, ShardConflict:
            nothing is written.
        """
        what = f"scores for round {round}" + ("" if shard is None else f" shard {shard}")
        round = require_index(round, "round", what)
        shard = None if shard is None else require_index(shard, "shard", what)
        ids = as_frame_id_array(frame_ids, what)
        values = as_score_array(scores, len(ids), what)
        require_finite(ids, values, what)
        provenance = {
            "model_version": model_version,
            "acquisition_fn": acquisition_fn,
            "run_id": run_id,
            "scored_at": scored_at or utc_now(),
        }
        with self._transaction() as con:
            stage(con, "staged_scores", {"frame_id": ids, "score": values})
            batch = _StagedBatch(what, shard, provenance, None, "staged_scores")
            return self._ingest_batches(con, round, [batch])[0]

    def ingest_score_shard(self, path: str | os.PathLike[str], *, round: int, shard: int) -> IngestResult:
        """Ingest one Parquet score shard (see ``shards.py`` for its columns).

        Idempotent: a shard already ingested with the same scores returns
        ``ingested=False`` and writes nothing, so a merge step can be re-run
        after a crash and picks up only what is missing.

        Raises:
            ShardFileError: unreadable file, missing columns, wrong round/shard.
            InvalidScores, UnknownFrames, DuplicateFrames: bad rows.
            ShardConflict: different scores were ingested for this shard, or
                the file does not score exactly this shard of the pool.
        """
        return self.ingest_score_shards({shard: path}, round=round)[0]

    def ingest_score_shards(
        self, paths: Mapping[int, str | os.PathLike[str]], *, round: int, model_version: str | None = None
    ) -> list[IngestResult]:
        """Ingest several shards of ``round`` (shard number -> Parquet file) in
        one transaction: all of them or, if any is bad, none.

        Cheaper than one :meth:`ingest_score_shard` per file: the catalog is
        scanned once for all shards. Shards already ingested identically are
        no-ops, as with :meth:`ingest_score_shard`.

        ``model_version``, when given, is the round's detector: a shard whose
        rows name another model is refused (``ShardFileError``) before anything
        is written, whatever its side files say.

        Returns:
            One result per shard, in ascending shard order.
        """
        what = f"score shards of round {round}"
        round = require_index(round, "round", what)
        shards = sorted((require_index(shard, "shard", what), Path(path)) for shard, path in paths.items())
        with self._transaction() as con:
            batches = []
            for shard, path in shards:
                table = f"staged_shard_{shard}"
                provenance = load_score_shard(con, path, table, round=round, shard=shard)
                if model_version is not None and provenance["model_version"] != model_version:
                    raise ShardFileError(
                        f"score shard {path} (round {round}, shard {shard}) was scored by model "
                        f"{provenance['model_version']!r}, not by the round's detector {model_version!r}; "
                        f"{rescore_hint(round, shard)} (nothing was ingested)"
                    )
                batches.append(
                    _StagedBatch(f"score shard {path} (round {round}, shard {shard})", shard, provenance,
                                 str(path), table)
                )
            self._combine_rank_terms(con, round, batches, what)
            return self._ingest_batches(con, round, batches)

    @staticmethod
    def _combine_rank_terms(con, round: int, batches: list[_StagedBatch], what: str) -> None:
        """Rank a rank combination's frames among all the round's shards: each staged
        ``score`` becomes the combination of the terms over every staged frame."""
        weights = [batch.provenance.get("term_weights") for batch in batches]
        if all(w is None for w in weights):
            return
        if any(w != weights[0] for w in weights):
            raise ShardFileError(
                f"{what}: the shards mix rank-combination terms and weights "
                f"({', '.join(f'shard {b.shard}: {w}' for b, w in zip(batches, weights))}); score every shard "
                "of a round with the round's one acquisition function"
            )
        pool = con.execute("SELECT n_shards FROM candidate_pool_rounds WHERE round = ?", [round]).fetchone()
        given = sorted(batch.shard for batch in batches)
        if pool is not None and given != list(range(pool[0])):
            fn = batches[0].provenance["acquisition_fn"]
            raise ShardConflict(
                f"{what}: {fn!r} ranks each frame among all the round's candidates, so its {pool[0]} shards are "
                f"ingested together, not shards {given} alone; run merged_scores for round {round} once "
                "every shard is scored (nothing was written)"
            )
        columns = {name: TERM_PREFIX + name for name in sorted(weights[0])}
        parts = [con.execute(f"SELECT {', '.join(columns.values())} FROM {b.table} ORDER BY pos").fetchnumpy()
                 for b in batches]
        terms = {name: np.concatenate([part[column] for part in parts]) for name, column in columns.items()}
        try:
            combined = rank_normalised_combination(terms, weights[0])
        except ValueError as exc:
            raise InvalidScores(f"{what}: {exc} (nothing was written)") from exc
        offset = 0
        for batch, part in zip(batches, parts):
            n = len(next(iter(part.values())))
            stage(con, "combined_scores", {"score": combined[offset:offset + n]})
            con.execute(f"UPDATE {batch.table} SET score = c.score FROM combined_scores c "
                        f"WHERE {batch.table}.pos = c.pos")
            offset += n

    def _ingest_batches(self, con, round: int, batches: list[_StagedBatch]) -> list[IngestResult]:
        results: dict[int, IngestResult] = {}
        fresh = []  # (slot, batch, n_events, fingerprint) of batches to write
        for slot, batch in enumerate(batches):
            n_events, fingerprint = self._check_batch(con, batch)
            previous = self._previous_ingest(con, batch, round, n_events, fingerprint)
            if previous is not None:
                results[slot] = IngestResult(round, batch.shard, previous, n_events, ingested=False)
                continue
            require_unique(con, batch.table, batch.what)
            fresh.append((slot, batch, n_events, fingerprint))
        if fresh:
            keyed = self._stack_and_resolve(con, fresh)
            for slot, batch, _, _ in fresh:
                # A view cannot take bound parameters; slot is our own int, not input.
                con.execute(f"CREATE OR REPLACE TEMP VIEW keyed_slot AS SELECT * FROM {keyed} WHERE slot = {int(slot)}")
                self._require_pool_shard(con, "keyed_slot", batch.what, round, batch.shard)
            first = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM score_batches").fetchone()[0]
            now = utc_now()
            for offset, (slot, batch, n_events, fingerprint) in enumerate(fresh):
                p = batch.provenance
                con.execute(
                    "INSERT INTO score_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [first + offset, round, batch.shard, p["model_version"], p["acquisition_fn"], p["run_id"],
                     p["scored_at"], now, batch.source_path, n_events, fingerprint],
                )
                results[slot] = IngestResult(round, batch.shard, first + offset, n_events, ingested=True)
            slots = np.array([slot for slot, *_ in fresh], dtype=np.int64)
            stage(con, "slot_batches", {"slot": slots, "batch_id": first + np.arange(len(fresh), dtype=np.int64)})
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE new_events AS
                SELECT b.batch_id::INTEGER AS batch_id, k.frame_key, k.score
                FROM {keyed} k JOIN slot_batches b USING (slot)
                """
            )
            con.execute("INSERT INTO score_events SELECT batch_id, frame_key, score FROM new_events")
            self._advance_latest_scores(con, "new_events", round)
        return [results[slot] for slot in range(len(batches))]

    @staticmethod
    def _check_batch(con, batch: _StagedBatch) -> tuple[int, int]:
        """Ids present, scores finite and at least one; returns (count, fingerprint)."""
        require_present(con, batch.table, batch.what)
        n_events, n_bad, fingerprint = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_NOT_FINITE}), "
            f"coalesce(sum(hash(frame_id, score)), 0)::HUGEINT FROM {batch.table}"
        ).fetchone()
        if n_bad:
            bad = con.execute(
                f"SELECT frame_id, score FROM {batch.table} WHERE {_NOT_FINITE} ORDER BY pos LIMIT 5"
            ).fetchall()
            raise InvalidScores(
                f"{batch.what}: NaN, infinite or missing scores for "
                f"{describe_frames([f'{b[0]}={b[1]}' for b in bad], n_bad)}; "
                "re-score those frames (nothing was written)"
            )
        if n_events == 0:
            raise InvalidScores(f"{batch.what}: no scores given; there is nothing to ingest")
        return n_events, fingerprint

    @staticmethod
    def _previous_ingest(con, batch: _StagedBatch, round: int, n_events: int, fingerprint: int) -> int | None:
        """The batch id under which this exact shard was ingested before, or None.

        Raises:
            ShardConflict: the shard was ingested before with other scores.
        """
        if batch.shard is None:
            return None
        previous = con.execute(
            "SELECT batch_id, n_events, fingerprint, model_version, acquisition_fn FROM score_batches "
            "WHERE round = ? AND shard = ?",
            [round, batch.shard],
        ).fetchone()
        if previous is None:
            return None
        p = batch.provenance
        if tuple(previous[1:]) != (n_events, fingerprint, p["model_version"], p["acquisition_fn"]):
            raise ShardConflict(
                f"{batch.what}: round {round} shard {batch.shard} was already ingested (batch {previous[0]}, "
                f"{previous[1]} scores from model {previous[3]!r}) with different scores; an ingested "
                "shard is immutable: score again under a new round instead of rewriting this one"
            )
        return previous[0]

    @staticmethod
    def _stack_and_resolve(con, fresh) -> str:
        """Stack the fresh batches (with a ``slot`` column) and resolve their
        frame keys with one catalog scan; returns the keyed table's name."""
        parts, offset = [], 0
        for slot, batch, n_events, _ in fresh:
            parts.append(f"SELECT {slot} AS slot, pos + {offset} AS pos, frame_id, score FROM {batch.table}")
            offset += n_events
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged_batches AS {' UNION ALL '.join(parts)}")
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE staged_batches_keyed AS
            SELECT s.*, f.frame_key FROM staged_batches s LEFT JOIN frames f ON f.frame_id = s.frame_id
            """
        )
        unknown = con.execute("SELECT slot FROM staged_batches_keyed WHERE frame_key IS NULL LIMIT 1").fetchone()
        if unknown is not None:
            # Let the single-batch resolver name the frames and the file.
            batch = next(b for slot, b, *_ in fresh if slot == unknown[0])
            resolve_frame_keys(con, batch.table, batch.what)
        return "staged_batches_keyed"

    @staticmethod
    def _require_pool_shard(con, keyed: str, what: str, round: int, shard: int | None) -> None:
        """With a saved pool for ``round``, scores must cover exactly its ``shard``."""
        pool = con.execute("SELECT n_shards FROM candidate_pool_rounds WHERE round = ?", [round]).fetchone()
        if pool is None:
            return  # a backfill or ad-hoc scoring: any registered frames
        n_shards = pool[0]
        if shard is not None and not 0 <= shard < n_shards:
            raise ShardConflict(f"{what}: round {round}'s candidate pool has shards 0..{n_shards - 1}, not {shard}")
        in_shard = "" if shard is None else "AND shard = ?"
        params = [round] if shard is None else [round, shard]
        outside = (
            f"FROM {keyed} WHERE frame_key NOT IN "
            f"(SELECT frame_key FROM candidate_pools WHERE round = ? {in_shard})"
        )
        extra = con.execute(f"SELECT frame_id {outside} ORDER BY pos LIMIT 5", params).fetchall()
        if extra:
            total = con.execute(f"SELECT count(*) {outside}", params).fetchone()[0]
            where = f"round {round}'s candidate pool" + ("" if shard is None else f" shard {shard}")
            asked = f"round={round}" + ("" if shard is None else f", shard={shard}")
            raise ShardConflict(
                f"{what}: not in {where}: {describe_frames([e[0] for e in extra], total)}; score exactly "
                f"the frames of candidate_pool({asked}) (nothing was written)"
            )
        if shard is not None:
            missing = con.execute(
                f"""
                SELECT f.frame_id FROM candidate_pools p JOIN frames f USING (frame_key)
                WHERE p.round = ? AND p.shard = ? AND p.frame_key NOT IN (SELECT frame_key FROM {keyed})
                ORDER BY p.position
                """,
                [round, shard],
            ).fetchnumpy()["frame_id"]
            if len(missing):
                raise ShardConflict(
                    f"{what}: no scores for {describe_frames(missing)} of its candidate pool shard; "
                    f"{rescore_hint(round, shard)} (nothing was written)"
                )

    @staticmethod
    def _advance_latest_scores(con, events: str, round: int) -> None:
        """Move ``frame_state``'s latest score to the newest of ``events``
        (``batch_id, frame_key, score``, all of ``round``)."""
        # The newest batch of the newest round wins; a late shard of an older
        # round must not overwrite a newer round's score.
        con.execute(
            f"""
            UPDATE frame_state SET latest_score = e.score, latest_round = ?, latest_batch = e.batch_id
            FROM (SELECT frame_key, arg_max(score, batch_id) AS score, max(batch_id) AS batch_id
                  FROM {events} GROUP BY frame_key) e
            WHERE frame_state.frame_key = e.frame_key
              AND (frame_state.latest_round IS NULL OR frame_state.latest_round <= ?)
            """,
            [round, round],
        )
