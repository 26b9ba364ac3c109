"""Selection: which freshly scored candidates are sent to the labeling vendor.

After the candidate pool has been rescored with the current model, CEAL buys the
top ``K`` of the pool. Consecutive frames of one drive are nearly identical, so
an optional per-sequence cap stops the batch from spending the budget on one
interesting stretch of road.

Selection works on ``(frame_id, score)`` pairs and never on array positions of
some other array: shards finish in any order, so the scores arrive shuffled.
"""

from __future__ import annotations

import numpy as np

_MAX_IDS_IN_ERROR = 10


def _as_sortable_ids(frame_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(frame_ids)
    if ids.dtype == object:
        # lexsort cannot order Python objects; frame ids are strings (see
        # frames.records.validate_frame_id) or integer keys, which numpy sorts natively.
        values = ids.tolist()
        if all(isinstance(i, str) for i in values):
            return ids.astype(str)
        if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in values):
            return ids.astype(np.int64)
        raise TypeError("frame ids must be all strings or all integers")
    return ids


def _listed(ids: np.ndarray) -> str:
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_IN_ERROR].tolist())
    return shown + (f" and {ids.size - _MAX_IDS_IN_ERROR} more" if ids.size > _MAX_IDS_IN_ERROR else "")


def select_top_k(
    frame_ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    sequence_ids: np.ndarray | None = None,
    per_sequence_cap: int | None = None,
    *,
    allow_fewer: bool = False,
) -> np.ndarray:
    """Return the ``k`` frame ids to label, best first.

    Args:
        frame_ids: ``(N,)`` unique ids of the freshly scored candidates.
        scores: ``(N,)`` their acquisition values (larger = more informative).
            NaN or infinite scores are rejected, naming the frames.
        k: batch size (the labeling budget of this round), ``>= 0``.
        sequence_ids: ``(N,)`` the drive each frame belongs to; needed with a cap.
        per_sequence_cap: at most this many frames per sequence; a frame that
            would exceed its sequence's cap is skipped and the next best frame
            of another sequence takes its place.
        allow_fewer: if ``False`` (default) asking for more frames than can be
            selected (after the cap) is an error; if ``True`` all selectable
            frames are returned instead.

    Returns:
        ``(min(k, selectable),)`` frame ids ordered by score descending, ties by
        frame id ascending.
    """
    ids = np.asarray(frame_ids)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or scores.shape != ids.shape:
        raise ValueError(f"frame_ids and scores must both be (N,); got {ids.shape} and {scores.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"frames {_listed(ids[bad])} have non-finite scores {_listed(scores[bad])}; "
            "rescore them (a NaN score cannot be ranked) or drop them from the candidates"
        )
    sortable = _as_sortable_ids(ids)
    unique, counts = np.unique(sortable, return_counts=True)
    if unique.size != sortable.size:
        raise ValueError(
            f"frame ids {_listed(unique[counts > 1])} appear more than once among the candidates; "
            "deduplicate the scores (keep one score per frame) before selecting"
        )
    order = np.lexsort((sortable, -scores))
    if per_sequence_cap is not None:
        cap_is_int = isinstance(per_sequence_cap, (int, np.integer)) and not isinstance(per_sequence_cap, bool)
        if not cap_is_int or per_sequence_cap < 1:
            raise ValueError(f"per_sequence_cap must be an int >= 1 or None, got {per_sequence_cap!r}")
        if sequence_ids is None:
            raise ValueError("per_sequence_cap needs sequence_ids (the sequence of each frame)")
        sequences = _as_sortable_ids(sequence_ids)
        if sequences.shape != ids.shape:
            raise ValueError(f"sequence_ids must be (N,) like frame_ids, got {sequences.shape}")
        ranked = sequences[order]
        # Occurrence number of each frame within its sequence, in ranked order:
        # a stable sort by sequence keeps the ranking inside each group.
        by_sequence = np.argsort(ranked, kind="stable")
        grouped = ranked[by_sequence]
        starts = np.r_[True, grouped[1:] != grouped[:-1]]
        group_start = np.maximum.accumulate(np.where(starts, np.arange(grouped.size), 0))
        occurrence = np.empty(grouped.size, dtype=np.int64)
        occurrence[by_sequence] = np.arange(grouped.size) - group_start
        order = order[occurrence < per_sequence_cap]
    elif sequence_ids is not None and np.asarray(sequence_ids).shape != ids.shape:
        raise ValueError(f"sequence_ids must be (N,) like frame_ids, got {np.asarray(sequence_ids).shape}")
    if k > order.size and not allow_fewer:
        capped = f" after a cap of {per_sequence_cap} per sequence" if per_sequence_cap is not None else ""
        raise ValueError(
            f"asked to select k={k} frames but only {order.size} of {ids.size} candidates are selectable{capped}; "
            "lower k, enlarge the candidate pool, raise the cap, or pass allow_fewer=True"
        )
    return ids[order[:k]]
