"""Label deliveries in the history: the vendor's boxes with their provenance.

Why here and not in the frame catalog: the catalog is a rebuildable image of
the *source* (an ingest may replace any of its parts), while a delivery is an
event of a round, like an export: it must survive a re-ingest, join the
round's export to be checked, and be written in the same transaction as the
labels it creates. So ``label_deliveries`` (one row per ingested file: round,
path, sha256, format, vendor, time), ``delivered_frames`` and
``delivered_boxes`` (the pipeline's box convention) live next to ``labels``
and ``exports``; ``rejected_deliveries`` records refused files with the reason.

Rules, each checked before anything is written (one transaction):

- a file already ingested (same sha256) is a no-op;
- the round must have a recorded export and every frame must be in it;
- a frame delivered before must come with the same boxes (to 1e-6 m/rad), else
  the whole file is refused: a relabel is a new decision, not an overwrite;
- frames delivered before with the same boxes are skipped; new frames are
  recorded with their boxes and become labeled from round ``r + 1`` (round
  ``r`` re-run must still see them as the unlabeled frames it chose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.history.connection import HistoryConnection, utc_now
from ceal_pipeline.core.history.errors import HistoryError, describe_frames
from ceal_pipeline.core.history.staging import as_frame_id_array, require_index, stage_known_frames

#: Two deliveries of a frame agree when every box value agrees to this (metres, radians).
SAME_BOX_TOLERANCE = 1e-6


class DeliveryRejected(HistoryError):
    """A delivery that contradicts the history (frames not exported, other boxes than before)."""


@dataclass(frozen=True)
class DeliveryResult:
    """What :meth:`DeliveryStore.ingest_delivery` did."""

    delivery_id: int | None
    frames_added: int
    boxes_added: int
    frames_unchanged: int
    already_ingested: bool = False


def _canonical(boxes: np.ndarray, names: Sequence[str]) -> list[tuple]:
    """Boxes as a sorted list of (class, rounded values): order-free comparison."""
    return sorted((str(n), *np.round(np.asarray(b, np.float64), 6).tolist()) for b, n in zip(boxes, names))


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and np.allclose(x[1:], y[1:], atol=SAME_BOX_TOLERANCE, rtol=0) for x, y in zip(a, b)
    )


class DeliveryStore(HistoryConnection):
    """Delivered boxes (mixed into :class:`AcquisitionHistory`)."""

    def ingest_delivery(
        self,
        round: int,
        *,
        path: str,
        sha256: str,
        format: str,
        vendor: str,
        frame_ids: Sequence[str],
        boxes: Sequence[Boxes],
        class_names: Sequence[Sequence[str]],
    ) -> DeliveryResult:
        """Record a delivery answering ``round``'s export (see the module docstring).

        ``boxes[i]`` are the :class:`~ceal_pipeline.core.boxes.Boxes` of ``frame_ids[i]`` and
        ``class_names[i]`` their classes.

        Raises:
            DeliveryRejected, UnknownFrames, DuplicateFrames: nothing is written.
        """
        round = require_index(round, "round", f"delivery {path}")
        what = f"delivery {path} (round {round})"
        ids = as_frame_id_array(frame_ids, what)
        if not (len(ids) == len(boxes) == len(class_names)):
            raise ValueError(f"{what}: {len(ids)} frames, {len(boxes)} box arrays and {len(class_names)} name lists")
        if not all(isinstance(b, Boxes) for b in boxes):
            raise TypeError(f"{what}: boxes must be core.boxes.Boxes, one per frame; "
                            "wrap each (n, 7) array: Boxes(array)")
        arrays = [b.values for b in boxes]
        names = [tuple(str(c) for c in n) for n in class_names]
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM label_deliveries WHERE sha256 = ?", [sha256]).fetchall():
                return DeliveryResult(None, 0, 0, len(ids), already_ingested=True)
            if not con.execute("SELECT 1 FROM exports WHERE round = ?", [round]).fetchall():
                raise DeliveryRejected(f"{what}: round {round} has no recorded export; a delivery may only label "
                                       "frames the vendor was sent: check the round folder it was put in")
            keyed = stage_known_frames(con, "delivery_frames", what, ids)
            foreign = [r[0] for r in con.execute(
                f"SELECT frame_id FROM {keyed} WHERE frame_key NOT IN "
                "(SELECT frame_key FROM selections WHERE round = ?) ORDER BY pos", [round]).fetchall()]
            if foreign:
                raise DeliveryRejected(f"{what}: {describe_frames(foreign)} were never exported in round {round}; "
                                       "ask the vendor to correct the file")
            before = self._previous_boxes(con, keyed)
            changed = [f for i, f in enumerate(ids) if f in before
                       and not _same(before[f], _canonical(arrays[i], names[i]))]
            if changed:
                raise DeliveryRejected(
                    f"{what}: {describe_frames(changed)} were delivered before with other boxes; a delivered frame "
                    "is never overwritten: withdraw the file, or ask the vendor which labels hold")
            new = [i for i, f in enumerate(ids) if f not in before]
            if not new:
                return DeliveryResult(None, 0, 0, len(ids))
            delivery_id = con.execute("SELECT coalesce(max(delivery_id), 0) + 1 FROM label_deliveries").fetchone()[0]
            n_boxes = int(sum(len(arrays[i]) for i in new))
            con.execute("INSERT INTO label_deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [delivery_id, round, str(path), sha256, format, vendor, len(new), n_boxes, utc_now()])
            new_ids = ids[new]
            counts = np.asarray([len(arrays[i]) for i in new], dtype=np.int64)
            frames_keyed = stage_known_frames(con, "delivery_new_frames", what, new_ids, n_boxes=counts)
            con.execute(f"INSERT INTO delivered_frames SELECT ?, frame_key, n_boxes FROM {frames_keyed}",
                        [delivery_id])
            if n_boxes:
                flat = np.concatenate([arrays[i] for i in new])
                box_ids = np.repeat(new_ids, counts)
                columns = {c: flat[:, k].copy() for k, c in enumerate(("x", "y", "z", "l", "w", "h", "yaw"))}
                boxes_keyed = stage_known_frames(
                    con, "delivery_boxes", what, box_ids, unique=False,
                    box_index=np.concatenate([np.arange(c) for c in counts]).astype(np.int32),
                    class_name=np.asarray([n for i in new for n in names[i]], dtype=object), **columns)
                con.execute(
                    f"INSERT INTO delivered_boxes SELECT ?, frame_key, box_index, x, y, z, l, w, h, yaw, class_name "
                    f"FROM {boxes_keyed} ORDER BY pos", [delivery_id])
            self._add_labels(con, new_ids, round + 1, "vendor")
            return DeliveryResult(int(delivery_id), len(new), n_boxes, len(ids) - len(new))

    @staticmethod
    def _previous_boxes(con, keyed: str) -> dict[str, list[tuple]]:
        """Frame id -> canonical boxes for the staged frames delivered before."""
        frames = con.execute(
            f"SELECT k.frame_id FROM {keyed} k SEMI JOIN delivered_frames d USING (frame_key)").fetchall()
        out = {f[0]: [] for f in frames}
        rows = con.execute(
            f"SELECT k.frame_id, b.class_name, b.x, b.y, b.z, b.l, b.w, b.h, b.yaw "
            f"FROM {keyed} k JOIN delivered_boxes b USING (frame_key)").fetchall()
        for frame_id, *box in rows:
            out[frame_id].append((box[0], *np.round(np.asarray(box[1:], np.float64), 6).tolist()))
        return {f: sorted(v) for f, v in out.items()}

    def delivered_labels(self, frame_ids: Sequence[str] | np.ndarray) -> dict[str, tuple[Boxes, tuple[str, ...]]]:
        """Frame id -> (:class:`~ceal_pipeline.core.boxes.Boxes` in delivery order, class names) for
        those of ``frame_ids`` that the vendor delivered (frames not delivered are absent)."""
        ids = as_frame_id_array(list(frame_ids), "delivered labels")
        if not len(ids):
            return {}
        with self._connect() as con:
            keyed = stage_known_frames(con, "wanted_labels", "delivered labels", ids, unique=False)
            frames = con.execute(
                f"SELECT DISTINCT k.frame_id FROM {keyed} k SEMI JOIN delivered_frames d USING (frame_key)"
            ).fetchall()
            rows = con.execute(
                f"SELECT k.frame_id, b.x, b.y, b.z, b.l, b.w, b.h, b.yaw, b.class_name FROM "
                f"(SELECT DISTINCT frame_id, frame_key FROM {keyed}) k JOIN delivered_boxes b USING (frame_key) "
                "ORDER BY b.delivery_id, b.box_index").fetchall()
        boxes: dict[str, list] = {f[0]: [] for f in frames}
        for frame_id, *values, name in rows:
            boxes[frame_id].append((values, name))
        return {f: (Boxes(np.asarray([v for v, _ in b], np.float64).reshape(-1, 7)), tuple(n for _, n in b))
                for f, b in boxes.items()}

    def delivered_frame_ids(self) -> set[str]:
        """Ids of every frame the vendor delivered boxes for."""
        with self._connect() as con:
            rows = con.execute("SELECT f.frame_id FROM delivered_frames d JOIN frames f USING (frame_key)").fetchall()
        return {r[0] for r in rows}

    def deliveries(self) -> list[dict]:
        """Every ingested delivery file with its provenance, oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT delivery_id, round, path, sha256, format, vendor, n_frames, n_boxes, ingested_at "
                "FROM label_deliveries ORDER BY delivery_id").fetchall()
        keys = ("delivery_id", "round", "path", "sha256", "format", "vendor", "n_frames", "n_boxes", "ingested_at")
        return [dict(zip(keys, r)) for r in rows]

    def record_rejected_delivery(self, path: str, sha256: str, round: int | None, reason: str) -> bool:
        """Record a refused delivery file (once per file content and reason); True if recorded now."""
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM rejected_deliveries WHERE sha256 = ? AND reason = ?",
                           [sha256, reason]).fetchall():
                return False
            con.execute("INSERT INTO rejected_deliveries VALUES (?, ?, ?, ?, ?)",
                        [str(path), sha256, round, reason, utc_now()])
            return True
