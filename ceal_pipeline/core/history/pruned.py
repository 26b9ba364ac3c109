"""Pruned frames: reversible removal of persistently low-scoring frames.

Pruning never deletes: each prune or unprune is an event in ``prune_events``
(with round and reason), and ``frame_state.is_pruned`` reflects the newest one.
A pruned frame leaves the unlabeled pool but keeps its score history, and
:meth:`PruningStore.unprune` brings it back (e.g. after a change of model or
acquisition function made its old scores meaningless).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import UnavailableFrames, describe_frames
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    require_index,
    stage_known_frames,
)


@dataclass(frozen=True)
class PrunedFrames:
    """Currently pruned frames with the round and reason of their pruning."""

    frame_ids: np.ndarray
    rounds: np.ndarray
    reasons: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)


class PruningStore(HistoryConnection):
    """Prune and unprune events (mixed into :class:`AcquisitionHistory`)."""

    def prune(self, frame_ids: Sequence[str] | np.ndarray, *, round: int, reason: str) -> int:
        """Take ``frame_ids`` out of the unlabeled pool in ``round`` for ``reason``.

        Frames already pruned are skipped (no second event).

        Returns:
            The number of frames newly pruned.

        Raises:
            UnknownFrames, DuplicateFrames: bad ids.
            UnavailableFrames: labeled frames (they are not in the pool).
        """
        return self._record_prune_events(frame_ids, round=round, reason=reason, action="prune")

    def unprune(self, frame_ids: Sequence[str] | np.ndarray, *, reason: str, round: int | None = None) -> int:
        """Return pruned ``frame_ids`` to the unlabeled pool; the prune events stay.

        Frames that are not pruned are skipped. Returns how many were restored.
        """
        return self._record_prune_events(frame_ids, round=round, reason=reason, action="unprune")

    def _record_prune_events(self, frame_ids, *, round: int | None, reason: str, action: str) -> int:
        what = f"{action} of frames" + ("" if round is None else f" in round {round}")
        round = None if round is None else require_index(round, "round", what)
        if not reason:
            raise ValueError(f"{what}: give a reason (it is kept in the history)")
        ids = as_frame_id_array(frame_ids, what)
        with self._transaction() as con:
            keyed = stage_known_frames(con, "staged_prune", what, ids)
            if action == "prune":
                labeled = con.execute(
                    f"SELECT k.frame_id FROM {keyed} k JOIN frame_state s USING (frame_key) WHERE s.is_labeled "
                    "ORDER BY k.pos"
                ).fetchnumpy()["frame_id"]
                if len(labeled):
                    raise UnavailableFrames(
                        f"{what}: labeled, so not in the pool to prune: {describe_frames(labeled)}; "
                        "prune only unlabeled frames (nothing was written)"
                    )
            wanted = "NOT s.is_pruned" if action == "prune" else "s.is_pruned"
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE changing AS
                SELECT k.pos, k.frame_key FROM {keyed} k JOIN frame_state s USING (frame_key) WHERE {wanted}
                """
            )
            first = con.execute("SELECT coalesce(max(event_id), 0) + 1 FROM prune_events").fetchone()[0]
            con.execute(
                "INSERT INTO prune_events SELECT ? + row_number() OVER (ORDER BY pos) - 1, ?, frame_key, ?, ?, ? "
                "FROM changing",
                [first, round, action, reason, utc_now()],
            )
            con.execute(
                "UPDATE frame_state SET is_pruned = ? FROM changing c WHERE frame_state.frame_key = c.frame_key",
                [action == "prune"],
            )
            return con.execute("SELECT count(*) FROM changing").fetchone()[0]

    def pruned_frames(self) -> PrunedFrames:
        """Frames pruned now, by frame key, with their latest prune's round and reason."""
        with self._connect() as con:
            cols = con.execute(
                """
                SELECT f.frame_id, arg_max(e.round, e.event_id) AS round, arg_max(e.reason, e.event_id) AS reason
                FROM frame_state s JOIN prune_events e USING (frame_key) JOIN frames f USING (frame_key)
                WHERE s.is_pruned AND e.action = 'prune'
                GROUP BY s.frame_key, f.frame_id ORDER BY s.frame_key
                """
            ).fetchnumpy()
        return PrunedFrames(
            np.asarray(cols["frame_id"], dtype=object),
            np.asarray(cols["round"]),
            np.asarray(cols["reason"], dtype=object),
        )
