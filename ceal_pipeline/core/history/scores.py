"""Score events: ingest (in memory or from Parquet shards) and the reads CEAL needs.

Score events are append-only: an ingest adds one ``score_batches`` row and its
``score_events`` and never updates or deletes an event. In the same transaction
it advances each scored frame's maintained latest score in ``frame_state``
(newest round wins; within a round, the newest batch), so that the candidate
pool step reads 10^7 latest scores with one narrow scan instead of aggregating
10^8 events. ``latest_scores_from_events`` recomputes the same from the events;
:meth:`ScoresStore.stale_latest_scores` compares the two for an asset check.

Ingesting a shard is idempotent on ``(round, shard)``: a second ingest of the
same scores is a documented no-op (``IngestResult.ingested`` is False), while
different scores under the same key are refused (a shard is immutable once
ingested). When the round has a saved candidate pool, a shard must score exactly
the frames of that pool shard, so a stale or mixed-up file cannot slip in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import InvalidScores, ShardConflict, describe_frames
from ceal_pipeline.core.history.shards import load_score_shard
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    as_score_array,
    require_finite,
    require_index,
    require_present,
    require_unique,
    resolve_frame_keys,
    stage,
    stage_known_frames,
)


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
class PoolScores:
    """The unlabeled pool (not labeled, pruned or quarantined) with latest scores.

    ``frame_keys`` are the store's int64 frame keys in ascending (registration)
    order, so the same history always yields the same arrays and a seeded draw
    over them is reproducible. ``scores`` is float64, NaN for frames never
    scored. ``frame_ids`` is filled only when asked for: fetching 10^7 strings
    costs seconds, and the candidate-pool step needs only keys.
    """

    frame_keys: np.ndarray
    scores: np.ndarray
    frame_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame_keys)


@dataclass(frozen=True)
class ScoreHistory:
    """Score events as parallel arrays (``frame_ids`` object, ``rounds`` int32,
    ``scores`` float64), e.g. for the pruning rule."""

    frame_ids: np.ndarray
    rounds: np.ndarray
    scores: np.ndarray


class ScoresStore(HistoryConnection):
    """Score events and latest scores (mixed into :class:`AcquisitionHistory`)."""

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
            return self._ingest_staged(con, what, round, shard, provenance, source_path=None)

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
        path = Path(path)
        what = f"score shard {path} (round {round}, shard {shard})"
        round, shard = require_index(round, "round", what), require_index(shard, "shard", what)
        with self._transaction() as con:
            provenance = load_score_shard(con, path, "staged_scores", round=round, shard=shard)
            return self._ingest_staged(con, what, round, shard, provenance, source_path=str(path))

    def _ingest_staged(self, con, what, round, shard, provenance, source_path) -> IngestResult:
        require_present(con, "staged_scores", what)
        bad = con.execute(
            "SELECT frame_id, score FROM staged_scores WHERE score IS NULL OR isnan(score) OR isinf(score) "
            "ORDER BY pos LIMIT 5"
        ).fetchall()
        if bad:
            total = con.execute(
                "SELECT count(*) FROM staged_scores WHERE score IS NULL OR isnan(score) OR isinf(score)"
            ).fetchone()[0]
            raise InvalidScores(
                f"{what}: NaN, infinite or missing scores for {describe_frames([f'{b[0]}={b[1]}' for b in bad], total)}; "
                "re-score those frames (nothing was written)"
            )
        n_events, fingerprint = con.execute(
            "SELECT count(*), coalesce(sum(hash(frame_id, score)), 0)::HUGEINT FROM staged_scores"
        ).fetchone()
        if n_events == 0:
            raise InvalidScores(f"{what}: no scores given; there is nothing to ingest")
        if shard is not None:
            previous = con.execute(
                "SELECT batch_id, n_events, fingerprint, model_version, acquisition_fn FROM score_batches "
                "WHERE round = ? AND shard = ?",
                [round, shard],
            ).fetchone()
            if previous is not None:
                same = tuple(previous[1:]) == (
                    n_events, fingerprint, provenance["model_version"], provenance["acquisition_fn"]
                )
                if not same:
                    raise ShardConflict(
                        f"{what}: round {round} shard {shard} was already ingested (batch {previous[0]}, "
                        f"{previous[1]} scores from model {previous[3]!r}) with different scores; an ingested "
                        "shard is immutable: score again under a new round instead of rewriting this one"
                    )
                return IngestResult(round, shard, previous[0], n_events, ingested=False)
        require_unique(con, "staged_scores", what)
        keyed = resolve_frame_keys(con, "staged_scores", what)
        self._require_pool_shard(con, keyed, what, round, shard)
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM score_batches").fetchone()[0]
        con.execute(
            "INSERT INTO score_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                batch_id, round, shard, provenance["model_version"], provenance["acquisition_fn"],
                provenance["run_id"], provenance["scored_at"], utc_now(), source_path, n_events, fingerprint,
            ],
        )
        con.execute(f"INSERT INTO score_events SELECT ?, frame_key, score FROM {keyed} ORDER BY pos", [batch_id])
        self._advance_latest_scores(con, keyed, round, batch_id)
        return IngestResult(round, shard, batch_id, n_events, ingested=True)

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
                    f"re-run the candidate_scores partition for round {round} shard {shard} (nothing was written)"
                )

    @staticmethod
    def _advance_latest_scores(con, keyed: str, round: int, batch_id: int) -> None:
        # The newest batch of the newest round wins; a late shard of an older
        # round must not overwrite a newer round's score.
        con.execute(
            f"""
            UPDATE frame_state SET latest_score = k.score, latest_round = ?, latest_batch = ?
            FROM {keyed} k
            WHERE frame_state.frame_key = k.frame_key
              AND (frame_state.latest_round IS NULL OR frame_state.latest_round <= ?)
            """,
            [round, batch_id, round],
        )

    def shards_ingested(self, round: int) -> list[int]:
        """Shard numbers of ``round`` already ingested, ascending."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT shard FROM score_batches WHERE round = ? AND shard IS NOT NULL ORDER BY shard", [round]
            ).fetchall()
        return [r[0] for r in rows]

    def unlabeled_pool(self, *, with_frame_ids: bool = False) -> PoolScores:
        """The frames CEAL may sample, with each one's latest score (NaN if never scored).

        Args:
            with_frame_ids: also fetch the id strings (seconds at 10^7 frames).
        """
        with self._connect() as con:
            # The relational API streams straight into numpy; execute().fetchnumpy()
            # materialises the result first and is ~2x slower at 10^7 rows.
            columns = con.sql(
                "SELECT frame_key, coalesce(latest_score, 'NaN'::DOUBLE) AS score FROM frame_state "
                "WHERE NOT (is_labeled OR is_pruned OR is_quarantined)"
            ).fetchnumpy()
            keys, scores = columns["frame_key"], columns["score"]
            # DuckDB scans in insertion order, which is key order; check it
            # (cheap) rather than pay for an ORDER BY over 10^7 rows.
            if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
                order = np.argsort(keys, kind="stable")
                keys, scores = keys[order], scores[order]
            frame_ids = self._frame_ids_for_keys(con, keys) if with_frame_ids else None
        return PoolScores(frame_keys=keys, scores=scores, frame_ids=frame_ids)

    def frame_ids_for_keys(self, frame_keys: np.ndarray) -> np.ndarray:
        """The frame ids of ``frame_keys`` (from :class:`PoolScores`), same order."""
        with self._connect() as con:
            return self._frame_ids_for_keys(con, np.asarray(frame_keys, dtype=np.int64))

    @staticmethod
    def _frame_ids_for_keys(con, keys: np.ndarray) -> np.ndarray:
        stage(con, "staged_keys", {"frame_key": keys})
        rows = con.execute(
            "SELECT k.pos, f.frame_id FROM staged_keys k LEFT JOIN frames f USING (frame_key) ORDER BY k.pos"
        ).fetchnumpy()
        ids = rows["frame_id"]
        if isinstance(ids, np.ma.MaskedArray) and ids.mask.any():
            raise KeyError(f"frame keys {keys[ids.mask][:5].tolist()} are not in the frame catalog")
        return np.asarray(ids, dtype=object)

    def latest_scores(self, frame_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Latest score of each of ``frame_ids`` (float64, NaN if never scored).

        Raises:
            UnknownFrames: ids not in the catalog.
        """
        what = "reading latest scores"
        ids = as_frame_id_array(frame_ids, what)
        with self._connect() as con:
            keyed = stage_known_frames(con, "staged_lookup", what, ids, unique=False)
            return con.execute(
                f"SELECT coalesce(s.latest_score, 'NaN'::DOUBLE) AS score FROM {keyed} k "
                "JOIN frame_state s USING (frame_key) ORDER BY k.pos"
            ).fetchnumpy()["score"]

    def round_scores(self, round: int, model_version: str | None = None) -> ScoreHistory:
        """The scores produced in ``round`` (by ``model_version`` if given): one
        per frame, from its newest batch in that round, ordered by frame key.
        The input of top-K selection."""
        version_filter = "" if model_version is None else "AND b.model_version = ?"
        with self._connect() as con:
            cols = con.execute(
                f"""
                SELECT f.frame_id, b.round, arg_max(e.score, e.batch_id) AS score
                FROM score_events e JOIN score_batches b USING (batch_id) JOIN frames f USING (frame_key)
                WHERE b.round = ? {version_filter}
                GROUP BY f.frame_key, f.frame_id, b.round ORDER BY f.frame_key
                """,
                [round] if model_version is None else [round, model_version],
            ).fetchnumpy()
        return ScoreHistory(
            np.asarray(cols["frame_id"], dtype=object), cols["round"].astype(np.int32), cols["score"]
        )

    def recent_scores(self, last_m: int = 3, *, unlabeled_only: bool = True) -> ScoreHistory:
        """Each frame's last ``last_m`` score events (newest round, then batch,
        first), for the persistently-low pruning rule.

        Args:
            last_m: events per frame kept (>= 1).
            unlabeled_only: only frames still in the unlabeled pool.
        """
        if last_m < 1:
            raise ValueError(f"last_m must be >= 1, got {last_m}")
        pool_filter = "WHERE NOT (s.is_labeled OR s.is_pruned OR s.is_quarantined)" if unlabeled_only else ""
        with self._connect() as con:
            cols = con.execute(
                f"""
                SELECT f.frame_id, r.round, r.score FROM (
                    SELECT e.frame_key, b.round, e.score, e.batch_id
                    FROM score_events e JOIN score_batches b USING (batch_id)
                    QUALIFY row_number() OVER (
                        PARTITION BY e.frame_key ORDER BY b.round DESC, e.batch_id DESC) <= ?
                ) r
                JOIN frame_state s USING (frame_key) JOIN frames f USING (frame_key)
                {pool_filter}
                ORDER BY r.frame_key, r.round, r.batch_id
                """,
                [last_m],
            ).fetchnumpy()
        return ScoreHistory(
            np.asarray(cols["frame_id"], dtype=object), cols["round"].astype(np.int32), cols["score"]
        )

    def score_event_count(self) -> int:
        """How many score events the history holds."""
        with self._connect() as con:
            return con.execute("SELECT count(*) FROM score_events").fetchone()[0]

    def unknown_frame_scores(self) -> int:
        """Score events whose frame is not in the catalog (0 by construction;
        an asset check asserts it)."""
        with self._connect() as con:
            return con.execute(
                "SELECT count(*) FROM score_events e ANTI JOIN frames f USING (frame_key)"
            ).fetchone()[0]

    def stale_latest_scores(self) -> int:
        """Frames whose maintained latest score differs from the one recomputed
        from the events (0 unless the store was bypassed). O(events)."""
        with self._connect() as con:
            return con.execute(
                """
                SELECT count(*) FROM frame_state s FULL JOIN latest_scores_from_events r USING (frame_key)
                WHERE s.latest_batch IS DISTINCT FROM r.batch_id OR s.latest_score IS DISTINCT FROM r.score
                """
            ).fetchone()[0]

    def rebuild_latest_scores(self) -> int:
        """Recompute every frame's latest score from the events (repair).

        Returns:
            The number of frames whose maintained latest score changed.
        """
        with self._transaction() as con:
            return con.execute(
                """
                UPDATE frame_state SET latest_score = r.score, latest_round = r.round, latest_batch = r.batch_id
                FROM (SELECT s.frame_key, l.score, l.round, l.batch_id
                      FROM frame_state s LEFT JOIN latest_scores_from_events l USING (frame_key)) r
                WHERE frame_state.frame_key = r.frame_key
                  AND (frame_state.latest_batch IS DISTINCT FROM r.batch_id
                       OR frame_state.latest_score IS DISTINCT FROM r.score)
                """
            ).fetchone()[0]
