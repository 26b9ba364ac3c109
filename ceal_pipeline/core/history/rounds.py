"""Rounds: their seed and parameters, detector, shards, compute ledger and vendor export.

The history is the one owner of these round facts; :class:`RoundRecord` reads
them together (``ceal status``). Dagster's ``vendor_export`` materialization is
written only after the export is recorded here, and the outbox drop is what the
vendor receives: neither is read back as the round's state by the pipeline's
decisions, except that the daemon, which never opens the history, takes the
materialization as the notice that a round closed.

A round is started once with its seed and parameters; starting it again with
the same ones is a no-op (a re-run), with different ones it is refused, because
the pool and selection recorded for the round were drawn from them. The export
is recorded exactly once per round: recording the same frames again returns
False (the vendor already has them), different frames are refused, so nothing
is ever sent twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import HistoryError, RoundConflict, describe_frames
from ceal_pipeline.core.history.staging import as_frame_id_array, require_index, stage


def _to_json(value: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): {exc}") from exc


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays come out of every core function; store them as
    # plain JSON numbers and lists rather than failing.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")


def export_digest(frame_ids: Sequence[str] | np.ndarray) -> str:
    """sha256 of the sorted frame ids, one per line: the identity of an export."""
    ids = sorted(str(f) for f in frame_ids)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


@dataclass(frozen=True)
class RoundRecord:
    """One round as the history records it.

    ``model_version`` is None before the round's pool was drawn; ``pool_frames`` and
    ``shards`` are None before then too. ``shards_ingested`` are the shard numbers
    whose scores were merged, ``selected`` the size of the saved selection (0 before
    it), ``export`` the recorded export (``path``, ``n_frames``, ``digest``,
    ``exported_at``) or None.
    """

    round: int
    seed: int
    started_at: datetime
    model_version: str | None
    pool_frames: int | None
    shards: int | None
    shards_ingested: tuple[int, ...]
    selected: int
    export: dict[str, Any] | None

    @property
    def missing_shards(self) -> tuple[int, ...]:
        """Shards of the drawn pool whose scores were not merged yet (empty before the pool)."""
        done = set(self.shards_ingested)
        return tuple(s for s in range(self.shards or 0) if s not in done)

    @property
    def stage(self) -> str:
        """How far the round got: ``started``, ``pool drawn``, ``scored``, ``selected`` or ``exported``."""
        if self.export is not None:
            return "exported"
        if self.selected:
            return "selected"
        if self.shards is None:
            return "started"
        return "pool drawn" if self.missing_shards else "scored"

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round, "stage": self.stage, "seed": self.seed,
            "started_at": self.started_at.isoformat(), "model_version": self.model_version,
            "pool_frames": self.pool_frames, "shards": self.shards,
            "shards_ingested": len(self.shards_ingested), "missing_shards": list(self.missing_shards),
            "selected": self.selected,
            "export": None if self.export is None else {
                **self.export, "exported_at": self.export["exported_at"].isoformat()},
        }


class RoundStore(HistoryConnection):
    """Rounds, ledgers and exports (mixed into :class:`AcquisitionHistory`)."""

    def start_round(self, round: int, *, seed: int, parameters: Mapping[str, Any]) -> bool:
        """Record that ``round`` runs with ``seed`` (63-bit, from
        ``seeding.derive_seed``) and ``parameters`` (JSON-serialisable).

        Returns:
            True if recorded now, False if the round was started identically before.

        Raises:
            RoundConflict: the round was started with another seed or parameters.
        """
        round = require_index(round, "round", f"starting round {round}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"round {round}: seed must be in [0, 2**63) (use seeding.derive_seed), got {seed}")
        params = _to_json(parameters, f"round {round} parameters")
        with self._transaction() as con:
            existing = con.execute("SELECT seed, parameters FROM rounds WHERE round = ?", [round]).fetchone()
            if existing is not None:
                if existing == (seed, params):
                    return False
                raise RoundConflict(
                    f"round {round} was started with seed {existing[0]} and parameters {existing[1]}, not seed "
                    f"{seed} and {params}; a round's pool and selection come from its recorded configuration: "
                    "re-run with that one, or change the configuration for the next round"
                )
            con.execute(
                "INSERT INTO rounds (round, seed, parameters, started_at) VALUES (?, ?, ?, ?)",
                [round, seed, params, utc_now()],
            )
            return True

    def round_parameters(self, round: int) -> dict[str, Any]:
        """The parameters ``round`` was started with (empty if it was never started)."""
        with self._connect() as con:
            row = con.execute("SELECT parameters FROM rounds WHERE round = ?", [round]).fetchone()
        return json.loads(row[0]) if row else {}

    def record_round_model(self, round: int, model_version: str) -> bool:
        """Record the detector whose scores round ``round`` selects from (the ``detector`` asset
        decides it; the round's pool step records it). Returns True if it changed.

        Raises:
            HistoryError: the round was never started.
        """
        if not model_version:
            raise ValueError(f"round {round}: a detector version is a non-empty string")
        with self._transaction() as con:
            row = con.execute("SELECT model_version FROM rounds WHERE round = ?", [round]).fetchone()
            if row is None:
                raise HistoryError(f"round {round} was never started; call start_round({round}, ...) first")
            if row[0] == model_version:
                return False
            con.execute("UPDATE rounds SET model_version = ? WHERE round = ?", [model_version, round])
            return True

    def round_model_version(self, round: int) -> str | None:
        """The detector version round ``round`` records (None before its pool was drawn)."""
        with self._connect() as con:
            row = con.execute("SELECT model_version FROM rounds WHERE round = ?", [round]).fetchone()
        return row[0] if row else None

    def round_records(self) -> list[RoundRecord]:
        """Every started round's record, ascending."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT r.round, r.seed, r.started_at, r.model_version, p.n_frames, p.n_shards,
                       (SELECT list(DISTINCT b.shard ORDER BY b.shard) FROM score_batches b
                        WHERE b.round = r.round AND b.shard IS NOT NULL),
                       (SELECT count(*) FROM selections s WHERE s.round = r.round),
                       e.path, e.n_frames, e.digest, e.exported_at
                FROM rounds r LEFT JOIN candidate_pool_rounds p USING (round) LEFT JOIN exports e USING (round)
                ORDER BY r.round
                """
            ).fetchall()
        return [
            RoundRecord(
                round=row[0], seed=row[1], started_at=row[2], model_version=row[3], pool_frames=row[4],
                shards=row[5], shards_ingested=tuple(row[6] or ()), selected=row[7],
                export=None if row[8] is None else {
                    "path": row[8], "n_frames": row[9], "digest": row[10], "exported_at": row[11]},
            )
            for row in rows
        ]

    def rounds(self) -> list[int]:
        """Every started round, ascending."""
        with self._connect() as con:
            return [r[0] for r in con.execute("SELECT round FROM rounds ORDER BY round").fetchall()]

    def record_ledger(self, round: int, ledger: Mapping[str, Any]) -> None:
        """Store ``round``'s compute ledger (``ComputeLedger.to_dict()``: frames
        scored, forward passes, seconds of training, scoring and selection).

        The ledger measures the latest run of the round, so a re-run replaces it.
        """
        text = _to_json(ledger, f"round {round} ledger")
        with self._transaction() as con:
            updated = con.execute(
                "UPDATE rounds SET ledger = ?, ledger_at = ? WHERE round = ?", [text, utc_now(), round]
            ).fetchone()[0]
            if not updated:
                raise HistoryError(f"round {round} was never started; call start_round({round}, ...) first")

    def record_export(
        self,
        round: int,
        path: str | os.PathLike[str],
        frame_ids: Sequence[str] | np.ndarray,
        manifest: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record that ``round``'s selection was exported to ``path``.

        Args:
            round: the round; it must have a saved selection.
            path: where the export file for the vendor was written.
            frame_ids: the exported frames: exactly the round's selection.
            manifest: extra JSON-serialisable facts (vendor, format, ...).

        Returns:
            True if recorded now; False if this round was already exported with
            the same frames (nothing is sent twice).

        Raises:
            RoundConflict: the round was exported with other frames, or the
                frames are not the round's selection.
        """
        round = require_index(round, "round", f"export of round {round}")
        ids = as_frame_id_array(frame_ids, f"export of round {round}")
        digest = export_digest(ids)
        manifest_text = _to_json(manifest or {}, f"round {round} export manifest")
        with self._transaction() as con:
            previous = con.execute(
                "SELECT path, n_frames, digest FROM exports WHERE round = ?", [round]
            ).fetchone()
            if previous is not None:
                if previous[2] == digest:
                    return False
                raise RoundConflict(
                    f"round {round} was already exported to {previous[0]} ({previous[1]} frames) with different "
                    "frames; exports are sent to the vendor exactly once per round: export the next round instead"
                )
            selected = con.execute(
                "SELECT f.frame_id FROM selections s JOIN frames f USING (frame_key) WHERE s.round = ?", [round]
            ).fetchnumpy()["frame_id"]
            if len(selected) == 0:
                raise RoundConflict(
                    f"round {round} has no saved selection; materialize selected_batch for round {round} "
                    "before exporting it"
                )
            chosen, exported = set(selected.tolist()), set(ids.tolist())
            if chosen != exported or len(exported) != len(ids):
                extra, missing = sorted(exported - chosen), sorted(chosen - exported)
                raise RoundConflict(
                    f"export of round {round}: the frames differ from the round's selection "
                    f"(not selected: {describe_frames(extra)}; selected but missing: {describe_frames(missing)}"
                    f"{'; duplicates given' if len(exported) != len(ids) else ''}); export exactly selection({round})"
                )
            con.execute(
                "INSERT INTO exports VALUES (?, ?, ?, ?, ?, ?)",
                [round, os.fspath(path), len(ids), digest, manifest_text, utc_now()],
            )
            return True

    def exported_frames(self, round: int) -> set[str] | None:
        """The frames of ``round``'s recorded export, or None if the round has no export."""
        with self._connect() as con:
            if con.execute("SELECT count(*) FROM exports WHERE round = ?", [round]).fetchone()[0] == 0:
                return None
            rows = con.execute(
                "SELECT f.frame_id FROM selections s JOIN frames f USING (frame_key) WHERE s.round = ?", [round]
            ).fetchall()
        return {r[0] for r in rows}

    def awaiting_labels(self, before_round: int) -> set[str]:
        """Frames exported in rounds before ``before_round`` whose labels have not arrived
        and whose export was not withdrawn: the vendor is labeling them, so they must not
        be bought again."""
        with self._connect() as con:
            rows = con.execute(
                """
                SELECT f.frame_id FROM selections s JOIN exports e USING (round) JOIN frames f USING (frame_key)
                WHERE s.round < ? AND s.frame_key NOT IN (SELECT frame_key FROM labels)
                  AND (s.round, s.frame_key) NOT IN (SELECT round, frame_key FROM export_withdrawals)
                """,
                [before_round],
            ).fetchall()
        return {r[0] for r in rows}

    def withdraw_export(self, round: int, frame_ids: Sequence[str] | None = None, *, reason: str) -> int:
        """Record that the vendor will not label ``frame_ids`` of ``round``'s export (all of
        it when None), so later rounds may buy them again. Recorded, never deleted;
        withdrawing a frame twice is a no-op.

        Returns:
            Frames withdrawn now.

        Raises:
            RoundConflict: the round has no recorded export, or a frame is not in it, or
                its labels already arrived.
        """
        round = require_index(round, "round", f"withdrawal of round {round}'s export")
        if not reason or not reason.strip():
            raise ValueError(f"withdrawing round {round}'s export needs a reason (who asked, and why)")
        exported = self.exported_frames(round)
        if exported is None:
            raise RoundConflict(f"round {round} has no recorded export; there is nothing to withdraw")
        ids = sorted(exported) if frame_ids is None else sorted(set(as_frame_id_array(frame_ids, "withdrawal")))
        foreign = [f for f in ids if f not in exported]
        if foreign:
            raise RoundConflict(
                f"not in round {round}'s export: {describe_frames(foreign)}; withdraw only frames that were exported"
            )
        with self._transaction() as con:
            stage(con, "withdrawn_ids", {"frame_id": np.asarray(ids, dtype=object)})
            labeled = con.execute(
                "SELECT w.frame_id FROM withdrawn_ids w JOIN frames f USING (frame_id) "
                "WHERE f.frame_key IN (SELECT frame_key FROM labels) ORDER BY w.pos"
            ).fetchall()
            if labeled:
                raise RoundConflict(
                    f"the labels of {describe_frames([r[0] for r in labeled])} already arrived; a delivered frame "
                    "cannot be withdrawn (nothing was recorded)"
                )
            return con.execute(
                """
                INSERT INTO export_withdrawals
                SELECT ?, f.frame_key, ?, ? FROM withdrawn_ids w JOIN frames f USING (frame_id)
                WHERE (?, f.frame_key) NOT IN (SELECT round, frame_key FROM export_withdrawals)
                """,
                [round, reason.strip(), utc_now(), round],
            ).fetchone()[0]

    def export(self, round: int) -> dict[str, Any] | None:
        """The recorded export of ``round`` (path, n_frames, digest, manifest,
        exported_at), or None."""
        with self._connect() as con:
            row = con.execute(
                "SELECT path, n_frames, digest, manifest, exported_at FROM exports WHERE round = ?", [round]
            ).fetchone()
        if row is None:
            return None
        return {
            "path": row[0], "n_frames": row[1], "digest": row[2], "manifest": json.loads(row[3]), "exported_at": row[4]
        }
