"""Reading scores: the unlabeled pool's latest scores and the views CEAL needs.

The latest score of each frame is maintained in ``frame_state`` by every ingest
(``ingest.py``); :meth:`ScoresStore.unlabeled_pool` returns it for 10^7 frames
as two numpy arrays in well under a second. ``latest_scores_from_events``
recomputes it from the append-only events and :meth:`ScoresStore.rebuild_latest_scores`
repairs the maintained copy from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection
from ceal_pipeline.core.history.staging import as_frame_id_array, stage, stage_known_frames


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
