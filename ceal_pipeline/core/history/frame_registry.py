"""The frames the history knows (key, id, sequence): registration, labels and quarantine.

Everything else about a frame (time, sensor files, split, source) is the frame
catalog's (:mod:`ceal_pipeline.catalog`), read by id: the history keeps no second copy.

Registration is idempotent: a frame already registered with the same sequence
is skipped, so the ``acquisition_history`` asset can hand over the whole catalog every
night and only new frames are added. The same id in another sequence is an error
(two sources disagreeing about a frame is a data bug to look at, not to paper over);
a file moved in the source is the catalog's business, not a conflict. Labeling and
quarantining take a frame out of the unlabeled pool; both are recorded as events
with their round, and repeating them is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import FrameConflict, HistoryError, describe_frames
from ceal_pipeline.core.history.staging import (
    as_frame_id_array,
    require_index,
    require_present,
    require_unique,
    stage,
    stage_known_frames,
)
from ceal_pipeline.frames.records import (
    ALLOWED_ID_CHARACTERS,
    FRAME_ID_PATTERN,
    InvalidFrameId,
    QuarantinedFrame,
)

_ATTRIBUTES = ("sequence_id",)


@dataclass(frozen=True)
class RegistrationResult:
    """What :meth:`FrameRegistry.register_frame_arrays` did: frames added and frames
    that were already registered in the same sequence (skipped)."""

    added: int
    already_registered: int


def _column(values: str | Sequence[str] | np.ndarray, n: int, name: str) -> np.ndarray:
    """A per-frame string column from one shared value or one value per frame."""
    if isinstance(values, str):
        column = np.empty(n, dtype=object)
        column[:] = values
        return column
    column = np.asarray(values, dtype=object)
    if column.shape != (n,):
        raise ValueError(f"registering frames: {name} must be one string or {n} strings, got shape {column.shape}")
    return column


class FrameRegistry(HistoryConnection):
    """Frames, labels and quarantine (mixed into :class:`AcquisitionHistory`)."""

    def register_frame_arrays(
        self,
        frame_ids: Sequence[str] | np.ndarray,
        sequence_ids: Sequence[str] | np.ndarray,
        *,
        labeled: Sequence[bool] | np.ndarray | None = None,
        label_round: int = 0,
    ) -> RegistrationResult:
        """Register frames given as parallel arrays (the fast path for 10^7 frames).

        Args:
            frame_ids: unique ids, valid per ``frames.records.validate_frame_id``.
            sequence_ids: the driving sequence of each frame (one string for all or one per frame).
            labeled, label_round: frames that arrive with labels (seed set,
                annotated datasets) are recorded as labeled in ``label_round``
                with source ``"catalog"``, in the same transaction.

        Returns:
            How many frames were added and how many were already registered
            in the same sequence (those are skipped: registering twice is a no-op).

        Raises:
            InvalidFrameId, DuplicateFrames, FrameConflict: nothing is written.
        """
        ids = as_frame_id_array(frame_ids, "registering frames")
        n = len(ids)
        columns = {
            "frame_id": ids,
            "sequence_id": _column(sequence_ids, n, "sequence_ids"),
        }
        label_mask = np.zeros(n, dtype=bool) if labeled is None else np.asarray(labeled, dtype=bool)
        if label_mask.shape != (n,):
            raise ValueError(f"registering frames: labeled must hold {n} booleans, got shape {label_mask.shape}")
        label_round = require_index(label_round, "label_round", "registering frames")
        if n == 0:
            return RegistrationResult(added=0, already_registered=0)
        with self._transaction() as con:
            stage(con, "staged_frames", columns)
            self._check_staged_frames(con)
            known = self._check_against_catalog(con)
            base = con.execute("SELECT coalesce(max(frame_key) + 1, 0) FROM frames").fetchone()[0]
            # Keys are base + input position: unique and increasing without a sort
            # over 10^7 rows; skipped (known) frames just leave gaps.
            con.execute(
                f"""
                INSERT INTO frames
                SELECT ? + s.pos, s.frame_id, s.sequence_id
                FROM staged_frames s {"ANTI JOIN frames f USING (frame_id)" if known else ""}
                ORDER BY s.pos
                """,
                [base],
            )
            con.execute("INSERT INTO frame_state (frame_key) SELECT frame_key FROM frames WHERE frame_key >= ?", [base])
            if label_mask.any():
                self._add_labels(con, ids[label_mask], label_round, "catalog")
            return RegistrationResult(added=n - known, already_registered=known)

    @staticmethod
    def _check_staged_frames(con) -> None:
        what = "registering frames"
        require_present(con, "staged_frames", what)
        bad = con.execute(
            "SELECT frame_id FROM staged_frames WHERE NOT regexp_full_match(frame_id, ?) ORDER BY pos LIMIT 5",
            [FRAME_ID_PATTERN.pattern],
        ).fetchall()
        if bad:
            total = con.execute(
                "SELECT count(*) FROM staged_frames WHERE NOT regexp_full_match(frame_id, ?)",
                [FRAME_ID_PATTERN.pattern],
            ).fetchone()[0]
            raise InvalidFrameId(
                f"{what}: invalid ids for {describe_frames([ascii(b[0]) for b in bad], total)}: use 1-200 "
                f"ASCII characters of {ALLOWED_ID_CHARACTERS}, starting with a letter or digit (rename the frames "
                "in their source; nothing was written)"
            )
        for column in _ATTRIBUTES:
            missing = con.execute(
                f"SELECT frame_id FROM staged_frames WHERE {column} IS NULL ORDER BY pos LIMIT 5"
            ).fetchall()
            if missing:
                raise ValueError(
                    f"{what}: no {column} for {describe_frames([m[0] for m in missing])}; "
                    "fix the frame source (nothing was written)"
                )
        require_unique(con, "staged_frames", what)

    @staticmethod
    def _check_against_catalog(con) -> int:
        """Count staged frames already registered identically; raise if any differ."""
        changed = " OR ".join(f"s.{c} IS DISTINCT FROM f.{c}" for c in _ATTRIBUTES)
        conflicts = con.execute(
            f"""
            SELECT s.frame_id FROM staged_frames s JOIN frames f USING (frame_id)
            WHERE {changed} ORDER BY s.pos LIMIT 5
            """
        ).fetchall()
        if conflicts:
            raise FrameConflict(
                "registering frames: already registered in a different sequence: "
                f"{describe_frames([c[0] for c in conflicts])}; a frame id must name one frame: "
                "rename the new frames or fix the source that disagrees (nothing was written)"
            )
        return con.execute("SELECT count(*) FROM staged_frames s SEMI JOIN frames f USING (frame_id)").fetchone()[0]

    def add_labels(self, frame_ids: Sequence[str] | np.ndarray, *, round: int, source: str = "vendor") -> int:
        """Record that ``frame_ids`` are labeled (delivered by ``source`` in ``round``).

        Labeled frames leave the unlabeled pool. Frames that already have a label
        are skipped (a re-delivered batch is a no-op).

        Returns:
            The number of frames newly labeled.

        Raises:
            UnknownFrames, DuplicateFrames: nothing is written.
        """
        round = require_index(round, "round", f"labels for round {round}")
        ids = as_frame_id_array(frame_ids, f"labels for round {round}")
        with self._transaction() as con:
            return self._add_labels(con, ids, round, source)

    @staticmethod
    def _add_labels(con, ids: np.ndarray, round: int, source: str) -> int:
        keyed = stage_known_frames(con, "staged_labels", f"labels for round {round}", ids)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE new_labels AS
            SELECT k.frame_key FROM {keyed} k JOIN frame_state s USING (frame_key) WHERE NOT s.is_labeled
            """
        )
        con.execute(
            "INSERT INTO labels SELECT frame_key, ?, ?, ? FROM new_labels", [round, source, utc_now()]
        )
        con.execute(
            "UPDATE frame_state SET is_labeled = true FROM new_labels n WHERE frame_state.frame_key = n.frame_key"
        )
        return con.execute("SELECT count(*) FROM new_labels").fetchone()[0]

    def labeled_frames(self) -> np.ndarray:
        """Ids of every labeled frame, in registration order (``object`` array)."""
        with self._connect() as con:
            return con.execute(
                "SELECT f.frame_id FROM frame_state s JOIN frames f USING (frame_key) "
                "WHERE s.is_labeled ORDER BY s.frame_key"
            ).fetchnumpy()["frame_id"]

    def label_rounds(self) -> dict[str, int]:
        """Frame id -> the round of its first label event, for every labeled frame."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT f.frame_id, min(l.round) FROM labels l JOIN frames f USING (frame_key) GROUP BY f.frame_id"
            ).fetchall()
        return dict(rows)

    def quarantine(self, frames: Sequence[QuarantinedFrame], *, round: int | None = None) -> int:
        """Record frames that could not be read, with their reason and file.

        The id is stored as given (a source may quarantine a frame precisely
        because its id or file is malformed). A registered frame that is
        quarantined leaves the unlabeled pool. Recording the same
        ``(frame_id, reason, path)`` again is a no-op.

        Returns:
            The number of new quarantine records.
        """
        frames = list(frames)
        if not frames:
            return 0
        columns = {
            "frame_id": np.array([q.frame_id for q in frames], dtype=object),
            "reason": np.array([q.reason for q in frames], dtype=object),
            "path": np.array([q.path for q in frames], dtype=object),
            "source": np.array([q.source for q in frames], dtype=object),
        }
        with self._transaction() as con:
            stage(con, "staged_quarantine", columns)
            require_present(con, "staged_quarantine", "quarantining frames")
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE new_quarantine AS
                SELECT frame_id, reason, path, any_value(source) AS source FROM staged_quarantine s
                ANTI JOIN quarantined_frames q USING (frame_id, reason, path)
                GROUP BY frame_id, reason, path ORDER BY min(pos)
                """
            )
            con.execute(
                "INSERT INTO quarantined_frames SELECT frame_id, reason, path, source, ?, ? FROM new_quarantine",
                [round, utc_now()],
            )
            con.execute(
                """
                UPDATE frame_state SET is_quarantined = true
                FROM (SELECT f.frame_key FROM frames f SEMI JOIN staged_quarantine q USING (frame_id)) AS hit
                WHERE frame_state.frame_key = hit.frame_key
                """
            )
            return con.execute("SELECT count(*) FROM new_quarantine").fetchone()[0]

    def release_readable_frames(self, present_ids: Sequence[str] | np.ndarray,
                                unreadable_ids: Sequence[str] = ()) -> list[str]:
        """Return to the pool the quarantined frames the source reads again: those among
        ``present_ids`` (the catalog's frames) that are not among ``unreadable_ids`` (its
        quarantine now), e.g. after a truncated file was replaced.

        The source is the one owner of "this frame cannot be read": a frame it reads again
        leaves the quarantine at the next registration, and its quarantine records stay as
        history. Retired frames (``retire_labeled_frames``) stay out: they hold labels and
        come back only with a new delivery. Returns the released ids.
        """
        with self._connect() as con:
            held = con.execute(
                "SELECT f.frame_id FROM frame_state s JOIN frames f USING (frame_key) WHERE s.is_quarantined "
                "AND f.frame_id NOT IN (SELECT frame_id FROM quarantined_frames WHERE source = 'retired')"
            ).fetchnumpy()["frame_id"]
        if not len(held):  # the usual case: nothing to compare the catalog's frames with
            return []
        held = held.astype(str)
        readable = np.isin(held, np.asarray(present_ids, dtype=str)) & ~np.isin(
            held, np.asarray(list(unreadable_ids), dtype=str))
        fixed = np.sort(held[readable]).astype(object)
        if not len(fixed):
            return []
        with self._transaction() as con:
            stage(con, "staged_release", {"frame_id": fixed})
            con.execute(
                """
                UPDATE frame_state SET is_quarantined = false
                FROM (SELECT f.frame_key FROM frames f SEMI JOIN staged_release r USING (frame_id)) AS hit
                WHERE frame_state.frame_key = hit.frame_key
                """
            )
        return [str(f) for f in fixed]

    def retire_labeled_frames(self, frame_ids: Sequence[str] | np.ndarray, *, reason: str) -> int:
        """Take labeled frames that left the source out of the labeled set, for good.

        Each is recorded in the quarantine with ``reason`` (so it never enters a pool
        again) and is no longer labeled; its label events and delivered boxes stay as
        history. Adding a label to it later (it came back to the source) labels it again.
        Returns how many frames were retired now (retiring one twice is a no-op).

        Raises:
            UnknownFrames: an id is not registered.
            HistoryError: an id is registered but not labeled (nothing to retire).
        """
        ids = as_frame_id_array(frame_ids, "retiring labeled frames")
        if not len(ids):
            return 0
        text = f"retired: {reason.strip()}"
        with self._transaction() as con:
            keyed = stage_known_frames(con, "retired_frames", "retiring labeled frames", ids)
            never = [r[0] for r in con.execute(
                f"SELECT k.frame_id FROM {keyed} k WHERE k.frame_key NOT IN (SELECT frame_key FROM labels) "
                "ORDER BY pos").fetchall()]
            if never:
                raise HistoryError(f"retiring labeled frames: {describe_frames(never)} were never labeled; only "
                                   "labeled frames are retired (quarantine unlabeled ones instead)")
            retired = con.execute(
                f"SELECT count(*) FROM {keyed} k JOIN frame_state s USING (frame_key) WHERE s.is_labeled"
            ).fetchone()[0]
            con.execute(
                f"INSERT INTO quarantined_frames SELECT k.frame_id, ?, '', 'retired', NULL, ? FROM {keyed} k "
                "WHERE (k.frame_id, ?) NOT IN (SELECT frame_id, reason FROM quarantined_frames) ORDER BY pos",
                [text, utc_now(), text])
            con.execute(
                f"UPDATE frame_state SET is_labeled = false, is_quarantined = true "
                f"FROM (SELECT frame_key FROM {keyed}) AS hit WHERE frame_state.frame_key = hit.frame_key")
            return int(retired)

    def quarantined_frames(self) -> list[QuarantinedFrame]:
        """Every quarantine record, in the order recorded (the table is append-only)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT frame_id, reason, path, source FROM quarantined_frames ORDER BY quarantined_at, rowid"
            ).fetchall()
        return [QuarantinedFrame(frame_id=r[0], reason=r[1], path=r[2], source=r[3]) for r in rows]

    def frame_count(self) -> int:
        """How many frames are registered."""
        with self._connect() as con:
            return con.execute("SELECT count(*) FROM frames").fetchone()[0]
