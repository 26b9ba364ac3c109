"""A round's candidate pool and its selected batch, as stored decisions.

Both are fixed once saved: shards of the pool may already be scored, and the
selection may already be exported, so saving a *different* pool or selection
for the same round is refused; saving the *same* one again (a re-run with the
recorded seed) is a no-op that returns False. Pool frames must still be in the
unlabeled pool; selected frames must come from the round's pool.

Pools are split into ``n_shards`` contiguous runs of the pool order, balanced
to within one frame (:func:`ceal_pipeline.core.round.shard_of_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.round import shard_of_positions
from ceal_pipeline.core.history.errors import (
    EmptyCandidatePool,
    RoundConflict,
    UnavailableFrames,
    UnknownFrames,
    describe_frames,
)
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    as_score_array,
    require_finite,
    require_index,
    require_unique,
    stage,
    stage_known_frames,
)


@dataclass(frozen=True)
class StoredCandidatePool:
    """A round's saved candidate pool: ``frame_ids`` in pool order and the
    shard of each (``shards``, int32)."""

    round: int
    frame_ids: np.ndarray
    shards: np.ndarray
    n_shards: int
    seed: int | None
    sampling_s: float | None = None

    def __len__(self) -> int:
        return len(self.frame_ids)

    def shard(self, shard: int) -> np.ndarray:
        """Frame ids of one shard, in pool order."""
        if not 0 <= shard < self.n_shards:
            raise IndexError(f"round {self.round}'s candidate pool has shards 0..{self.n_shards - 1}, not {shard}")
        return self.frame_ids[self.shards == shard]


@dataclass(frozen=True)
class StoredSelection:
    """A round's selected batch: ``frame_ids`` by rank with their ``scores``."""

    round: int
    frame_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)


_UNAVAILABLE = "(s.is_labeled OR s.is_pruned OR s.is_quarantined)"


class PoolStore(HistoryConnection):
    """Candidate pools and selections (mixed into :class:`AcquisitionHistory`)."""

    def save_candidate_pool(
        self,
        round: int,
        *,
        frame_ids: Sequence[str] | np.ndarray | None = None,
        frame_keys: np.ndarray | None = None,
        n_shards: int = 1,
        seed: int | None = None,
        sampling_s: float | None = None,
    ) -> bool:
        """Save ``round``'s candidate pool, given by frame ids or by the
        ``PoolScores.frame_keys`` it was sampled from (the fast path at 10^7).

        Args:
            round: the acquisition round.
            frame_ids, frame_keys: the pool in draw order; exactly one of them.
            n_shards: how many scoring partitions the pool is split into.
            seed: the seed the pool was drawn with, kept for reproduction.
            sampling_s: seconds the draw took (for the round's compute ledger).

        Returns:
            True if saved now, False if the identical pool was already saved.

        Raises:
            EmptyCandidatePool: no frames, or more shards than frames.
            UnknownFrames, DuplicateFrames, UnavailableFrames: bad frames.
            RoundConflict: the round already has a different pool.
        """
        what = f"candidate pool for round {round}"
        round = require_index(round, "round", what)
        if (frame_ids is None) == (frame_keys is None):
            raise TypeError(f"{what}: give exactly one of frame_ids or frame_keys")
        n = len(frame_ids if frame_ids is not None else frame_keys)
        if n == 0:
            raise EmptyCandidatePool(
                f"{what} is empty; nothing would be scored: check the pool fraction/count and that the "
                "unlabeled pool is not exhausted (unlabeled_pool())"
            )
        if not 1 <= n_shards <= n:
            raise EmptyCandidatePool(f"{what}: n_shards must be between 1 and the pool size {n}, got {n_shards}")
        with self._transaction() as con:
            keyed = self._stage_pool(con, what, frame_ids, frame_keys)
            existing = con.execute(
                "SELECT n_frames, n_shards, seed FROM candidate_pool_rounds WHERE round = ?", [round]
            ).fetchone()
            if existing is not None:
                same = existing[:2] == (n, n_shards) and con.execute(
                    f"""
                    SELECT count(*) FROM {keyed} k JOIN candidate_pools p
                      ON p.round = ? AND p.position = k.pos AND p.frame_key = k.frame_key
                    """,
                    [round],
                ).fetchone()[0] == n
                if same:
                    return False
                raise RoundConflict(
                    f"round {round} already has a candidate pool of {existing[0]} frames in {existing[1]} shards "
                    f"(seed {existing[2]}); a round's pool is fixed once sampled because its shards may be scored "
                    "already: re-run with the recorded seed and parameters, or start the next round"
                )
            self._require_pool_frames(con, keyed, what)
            con.execute(
                "INSERT INTO candidate_pool_rounds (round, n_frames, n_shards, seed, created_at, sampling_s) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [round, n, n_shards, seed, utc_now(), sampling_s],
            )
            stage(con, "staged_pool_shards", {"shard": shard_of_positions(n, n_shards)})
            con.execute(
                f"INSERT INTO candidate_pools SELECT ?, k.pos, k.frame_key, s.shard FROM {keyed} k "
                "JOIN staged_pool_shards s USING (pos)",
                [round],
            )
            return True

    @staticmethod
    def _stage_pool(con, what, frame_ids, frame_keys) -> str:
        if frame_ids is not None:
            return stage_known_frames(con, "staged_pool", what, as_frame_id_array(frame_ids, what))
        keys = np.asarray(frame_keys)
        if keys.ndim != 1 or not np.issubdtype(keys.dtype, np.integer):
            raise TypeError(f"{what}: frame_keys must be a 1-D integer array from unlabeled_pool()")
        keys = keys.astype(np.int64, copy=False)
        stage(con, "staged_pool_keyed", {"frame_key": keys})
        # A sort of the pool's keys in numpy is ~10x cheaper than DISTINCT in SQL.
        if np.unique(keys).size != keys.size:
            require_unique(con, "staged_pool_keyed", what, column="frame_key")
        return "staged_pool_keyed"

    @staticmethod
    def _require_pool_frames(con, keyed: str, what: str) -> None:
        """Pool frames (already distinct) must be registered and in the unlabeled pool.

        One join answers both for the whole pool (at 5% of 10^7 frames it is
        most of the write half of the timed candidate-pool step); the slower
        queries that name the offending frames run only when one fails.
        """
        unknown, unavailable = con.execute(
            f"""
            SELECT count(*) FILTER (WHERE s.frame_key IS NULL), count(*) FILTER (WHERE {_UNAVAILABLE})
            FROM {keyed} k LEFT JOIN frame_state s USING (frame_key)
            """
        ).fetchone()
        if unknown:
            sample = con.execute(
                f"SELECT frame_key FROM {keyed} ANTI JOIN frame_state USING (frame_key) ORDER BY pos LIMIT 5"
            ).fetchall()
            raise UnknownFrames(
                f"{what}: {unknown} frame keys ({', '.join(str(u[0]) for u in sample)}, ...) are not in the catalog; "
                "pass keys taken from unlabeled_pool().frame_keys of this same history"
            )
        if unavailable:
            gone = con.execute(
                f"""
                SELECT f.frame_id FROM {keyed} k JOIN frame_state s USING (frame_key) JOIN frames f USING (frame_key)
                WHERE {_UNAVAILABLE} ORDER BY k.pos LIMIT 5
                """
            ).fetchall()
            left = con.execute(f"SELECT count(*) FROM frame_state s WHERE NOT {_UNAVAILABLE}").fetchone()[0]
            raise UnavailableFrames(
                f"{what}: labeled, pruned or quarantined, so not in the unlabeled pool: "
                f"{describe_frames([g[0] for g in gone], unavailable)} ({left} frames are left in it); draw from "
                "unlabeled_pool() of the current history (nothing was written)"
            )

    def candidate_pool(self, round: int, shard: int | None = None) -> StoredCandidatePool:
        """``round``'s saved candidate pool (only ``shard`` if given).

        Raises:
            EmptyCandidatePool: the round has no saved pool yet.
        """
        with self._connect() as con:
            meta = con.execute(
                "SELECT n_shards, seed, sampling_s FROM candidate_pool_rounds WHERE round = ?", [round]
            ).fetchone()
            if meta is None:
                raise EmptyCandidatePool(
                    f"round {round} has no candidate pool yet; materialize candidate_pool for round {round} first"
                )
            if shard is not None and not 0 <= shard < meta[0]:
                raise IndexError(f"round {round}'s candidate pool has shards 0..{meta[0] - 1}, not {shard}")
            cols = con.execute(
                f"""
                SELECT f.frame_id, p.shard FROM candidate_pools p JOIN frames f USING (frame_key)
                WHERE p.round = ? {"" if shard is None else "AND p.shard = ?"} ORDER BY p.position
                """,
                [round] if shard is None else [round, shard],
            ).fetchnumpy()
        return StoredCandidatePool(
            round=round,
            frame_ids=np.asarray(cols["frame_id"], dtype=object),
            shards=cols["shard"].astype(np.int32),
            n_shards=meta[0],
            seed=meta[1],
            sampling_s=meta[2],
        )

    def has_candidate_pool(self, round: int) -> bool:
        """True once ``round``'s candidate pool is saved (its detector and pool are then fixed)."""
        with self._connect() as con:
            return con.execute("SELECT count(*) FROM candidate_pool_rounds WHERE round = ?", [round]).fetchone()[0] > 0

    def save_selection(
        self, round: int, frame_ids: Sequence[str] | np.ndarray, scores: Sequence[float] | np.ndarray
    ) -> bool:
        """Save ``round``'s selected batch (frame ids by rank, with their scores).

        Returns:
            True if saved now, False if the identical selection was saved before.

        Raises:
            EmptyCandidatePool: an empty selection.
            InvalidScores, UnknownFrames, DuplicateFrames: bad input.
            UnavailableFrames: frames outside the round's candidate pool (or,
                for a round without a pool, outside the unlabeled pool), or more
                frames than are left.
            RoundConflict: a different selection was already saved.
        """
        what = f"selection for round {round}"
        round = require_index(round, "round", what)
        ids = as_frame_id_array(frame_ids, what)
        values = as_score_array(scores, len(ids), what)
        if len(ids) == 0:
            raise EmptyCandidatePool(f"{what} is empty; select at least one frame (check K and the pool)")
        require_finite(ids, values, what)
        with self._transaction() as con:
            keyed = stage_known_frames(con, "staged_selection", what, ids, score=values)
            previous = con.execute("SELECT count(*) FROM selections WHERE round = ?", [round]).fetchone()[0]
            if previous:
                same = previous == len(ids) and con.execute(
                    f"""
                    SELECT count(*) FROM {keyed} k JOIN selections s
                      ON s.round = ? AND s.rank = k.pos AND s.frame_key = k.frame_key AND s.score = k.score
                    """,
                    [round],
                ).fetchone()[0] == len(ids)
                if same:
                    return False
                raise RoundConflict(
                    f"round {round} already has a selection of {previous} frames; it may be exported already, "
                    "so it is not replaced: re-run with the recorded seed and parameters, or start the next round"
                )
            has_pool = con.execute("SELECT count(*) FROM candidate_pool_rounds WHERE round = ?", [round]).fetchone()[0]
            if has_pool:
                outside = con.execute(
                    f"SELECT frame_id FROM {keyed} WHERE frame_key NOT IN "
                    "(SELECT frame_key FROM candidate_pools WHERE round = ?) ORDER BY pos",
                    [round],
                ).fetchnumpy()["frame_id"]
                if len(outside):
                    raise UnavailableFrames(
                        f"{what}: not in round {round}'s candidate pool: {describe_frames(outside)}; "
                        "select among the round's freshly scored candidates (nothing was written)"
                    )
            self._require_pool_frames(con, keyed, what)
            con.execute(
                f"INSERT INTO selections SELECT ?, pos, frame_key, score, ? FROM {keyed} ORDER BY pos",
                [round, utc_now()],
            )
            return True

    def selection(self, round: int) -> StoredSelection:
        """``round``'s saved selection, by rank (empty arrays if none saved)."""
        with self._connect() as con:
            cols = con.execute(
                "SELECT f.frame_id, s.score FROM selections s JOIN frames f USING (frame_key) "
                "WHERE s.round = ? ORDER BY s.rank",
                [round],
            ).fetchnumpy()
        return StoredSelection(round, np.asarray(cols["frame_id"], dtype=object), np.asarray(cols["score"]))
