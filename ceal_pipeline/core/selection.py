"""The selection stage: which scored candidates a round buys, and why each one.

CEAL rescoring gives every candidate an acquisition value; buying the top ``K``
of them (:func:`ceal_pipeline.core.selection.select_top_k`) is only the simplest
rule. A :class:`SelectionPolicy` chooses among

* ``topk``: the best values first (today's rule, per-sequence cap included);
* ``class_balance``: each frame's value weighted by how much the labeled set
  needs the classes the frame likely contains (CRB's "concise label" idea:
  under-represented by labeled box count and/or under-performing by last
  round's per-class AP), see :mod:`ceal_pipeline.core.class_balance`;
* ``diversity``: a greedy batch on a per-frame embedding that trades value
  against the distance to the frames already in the batch (k-center greedy at
  weight 1; consecutive 10 Hz frames of a drive look alike), see
  :mod:`ceal_pipeline.core.batch_diversity`;
* ``class_balance_diversity``: both;

and buys either ``K`` frames or, with a :class:`LabelingBudget`, as much value
per unit of money as fits the budget (a vendor charges per frame and per
cuboid; the detector's box count estimates a frame's cuboids). The budget is
never exceeded.

Every pick records which signal decided it (:data:`DECISIVE_SIGNALS`): the first
signal of the chain ``acquisition_value -> class_balance -> diversity ->
value_per_cost`` under which the frame was the unique best of the frames it
competed with (those still eligible at that step), else ``tie_break_frame_id``.
A round where the detector finds nothing (every candidate at the empty-frame
floor) is therefore visibly decided by ``diversity`` (the default tie-break uses
the embedding) instead of silently by frame id.

Everything is a function of ``(frame id, values)`` pairs, never of the order in
which candidates arrive: shards finish in any order. :func:`select_top_k` is the
plain top-K walk that ``topk`` reproduces.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ceal_pipeline.core.batch_diversity import DiversityState
from ceal_pipeline.core.class_balance import class_need, frame_class_weights
from ceal_pipeline.core.ranks import average_ranks
from ceal_pipeline.core.selection_policy import (
    DECISIVE_SIGNALS,
    SELECTION_METHODS,
    LabelingBudget,
    Selection,
    SelectionCandidates,
    SelectionMethod,
    SelectionPolicy,
    TieBreak,
)

__all__ = [
    "DECISIVE_SIGNALS", "SELECTION_METHODS", "LabelingBudget", "Selection", "SelectionCandidates", "SelectionMethod",
    "SelectionPolicy", "TieBreak", "select_batch", "select_top_k",
]

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
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    ids, scores, sortable = _scored_rows(frame_ids, scores)
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


def _scored_rows(frame_ids, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, float64 scores, sortable ids)``, checked: (N,) each, finite scores, unique ids."""
    ids = np.asarray(frame_ids)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or scores.shape != ids.shape:
        raise ValueError(f"frame_ids and scores must both be (N,); got {ids.shape} and {scores.shape}")
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
    return ids, scores, sortable


def _checked_rows(candidates: SelectionCandidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, values, sortable = _scored_rows(candidates.frame_ids, candidates.acquisition_values)
    for name, width in (("sequence_ids", None), ("cuboids", None), ("class_counts", 2), ("embeddings", 2)):
        column = getattr(candidates, name)
        if column is not None:
            shape = np.asarray(column).shape
            if shape[:1] != ids.shape or (width is not None and len(shape) != width) or (
                    width is None and len(shape) != 1):
                wanted = "(n,)" if width is None else "(n, ...)"
                raise ValueError(f"SelectionCandidates.{name} must be {wanted} with n={ids.size} rows, got {shape}")
    return ids, values, sortable


def _unique_best(scores: np.ndarray, pick: int, competitors: np.ndarray) -> bool:
    """Whether ``scores[pick]`` is strictly above every other competitor's."""
    others = competitors.copy()
    others[pick] = False
    return not others.any() or bool(scores[pick] > scores[others].max())


def select_batch(
    candidates: SelectionCandidates,
    policy: SelectionPolicy = SelectionPolicy(),
    *,
    k: Optional[int] = None,
    labeled_class_counts: Optional[np.ndarray] = None,
    class_ap: Optional[np.ndarray] = None,
) -> Selection:
    """Choose the round's batch from ``candidates`` under ``policy``.

    Args:
        candidates: the scored candidates (see :class:`SelectionCandidates`).
        policy: method, weights, cap and budget (see :class:`SelectionPolicy`).
        k: frames to buy; ``None`` only with a budget amount (then the money
            limits the batch). With both, whichever binds first.
        labeled_class_counts: ``(C,)`` labeled boxes per class in the labeled
            set (class balance: under-represented classes are needed more).
        class_ap: ``(C,)`` last round's per-class AP in [0, 1] (NaN: unknown;
            class balance: under-performing classes are needed more). Class
            balance needs at least one of the two.

    Returns:
        the :class:`Selection`. Deterministic: the same candidates in any order
        give the same selection. Without a budget amount, asking for more
        frames than are selectable (after the cap) is an error, as in
        :func:`~ceal_pipeline.core.selection.select_top_k`; with one, the batch
        ends when nothing eligible fits the money left.

    With ``topk``, no budget amount and either no embeddings or
    ``tie_break="frame_id"``, the chosen ids equal ``select_top_k``'s exactly.
    Cost: ``O(b * n * (d + C))`` for a batch of ``b`` frames, vectorised per pick.
    """
    ids, raw, sortable = _checked_rows(candidates)
    n = ids.size
    # Work in frame-id order so that every float reduction (ranks, centroid) and every tie
    # is independent of the order in which the candidates arrived.
    canonical = np.argsort(sortable, kind="stable")
    ids, raw = ids[canonical], raw[canonical]

    def column(name: str, dtype=np.float64):
        value = getattr(candidates, name)
        return None if value is None else np.asarray(value, dtype=dtype)[canonical]

    budget = policy.budget
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
        raise ValueError(f"k must be an int >= 0 or None, got {k!r}")
    if k is None and (budget is None or budget.amount is None):
        raise ValueError("give k (frames to buy) or a budget amount (SelectionPolicy.budget.amount); neither was set")
    cap = policy.per_sequence_cap
    if cap is not None and candidates.sequence_ids is None:
        raise ValueError("per_sequence_cap needs SelectionCandidates.sequence_ids (the sequence of each frame)")

    # Values on one unit-free scale in (0, 1]: rank normalisation keeps the order and the
    # ties of the raw values (so topk is unchanged) and makes them positive, which weighting
    # by class need and dividing by cost require (localization entropy is negative nats).
    value = (average_ranks(raw) + 1.0) / max(n, 1)
    weights = np.ones(n)
    if policy.uses_class_balance:
        if candidates.class_counts is None:
            raise ValueError(
                f"selection method {policy.method!r} needs SelectionCandidates.class_counts (expected objects per "
                "class in each frame, from the scoring passes); score with a detector that records them or use "
                "method 'topk' / 'diversity'"
            )
        need = class_need(labeled_class_counts, class_ap, strength=float(policy.class_balance_strength))
        weights = frame_class_weights(column("class_counts"), need)
    balanced = value * weights

    diversity_weight = float(policy.diversity_weight) if policy.uses_diversity else 0.0
    embeddings = column("embeddings")
    if diversity_weight > 0 and embeddings is None:
        raise ValueError(
            f"selection method {policy.method!r} needs SelectionCandidates.embeddings (one vector per frame, from "
            "the scoring pass); score with a detector that records them, or set diversity_weight=0"
        )
    tie_distance = policy.tie_break == "diversity" and embeddings is not None
    diversity = DiversityState(embeddings, every_pick=diversity_weight > 0) if (
        diversity_weight > 0 or tie_distance) else None

    cuboids = column("cuboids")
    if cuboids is not None and (not np.isfinite(cuboids).all() or (cuboids < 0).any()):
        raise ValueError(f"frames {_listed(ids[~(np.isfinite(cuboids) & (cuboids >= 0))])} have cuboid estimates "
                         "that are not finite counts >= 0")
    costs = None if budget is None else budget.frame_costs(cuboids, n)
    limited_by_money = budget is not None and budget.amount is not None

    sequences = None
    if cap is not None:
        by_sequence = _as_sortable_ids(np.asarray(candidates.sequence_ids)[canonical])
        sequences = np.unique(by_sequence, return_inverse=True)[1].reshape(-1)
        taken_per_sequence = np.zeros(int(sequences.max(initial=-1)) + 1, dtype=np.int64)

    available = np.ones(n, dtype=bool)
    spent = 0.0
    picks: list[int] = []
    picked_values: list[float] = []
    decided: list[str] = []
    target = n if k is None else int(k)
    stopped_by = "k" if k is not None else "candidates"
    while len(picks) < target:
        room = available if cap is None else available & (taken_per_sequence[sequences] < cap)
        eligible = room & (spent + costs <= budget.amount) if limited_by_money else room
        if not eligible.any():
            stopped_by = "budget" if room.any() else "candidates"
            break
        mixed = balanced
        if diversity_weight > 0:
            distance = diversity.normalised_distances(eligible)
            mixed = (1.0 - diversity_weight) * balanced + diversity_weight * distance
        objective = mixed / costs if limited_by_money else mixed
        # Lexicographic best: objective, then class-balanced value, then distance, then frame id.
        best = eligible & (objective == objective[eligible].max())
        if np.count_nonzero(best) > 1:
            best &= balanced == balanced[best].max()
        tied = np.flatnonzero(best)  # rows are in frame-id order: the smallest id wins what is left
        distance_decided = False
        if tie_distance and tied.size > 1:
            # Only the tied frames' distances are needed (computed lazily unless diversity is weighted).
            tied_distance = diversity.distances_of(tied)
            farthest = tied_distance == tied_distance.max()
            distance_decided = bool(np.count_nonzero(farthest) == 1)
            tied = tied[farthest]
        pick = int(tied[0])
        decided.append(_decisive_signal(pick, eligible, raw, balanced, mixed, objective, distance_decided, policy,
                                        diversity_weight, limited_by_money))
        picks.append(pick)
        picked_values.append(float(objective[pick]))
        available[pick] = False
        if cap is not None:
            taken_per_sequence[sequences[pick]] += 1
        if limited_by_money:
            spent = spent + float(costs[pick])
        if diversity is not None:
            diversity.add(pick)
    if k is not None and len(picks) < k and not limited_by_money:
        capped = f" after a cap of {cap} per sequence" if cap is not None else ""
        raise ValueError(
            f"asked to select k={k} frames but only {len(picks)} of {n} candidates are selectable{capped}; "
            "lower k, enlarge the candidate pool, raise the cap, or set a budget"
        )
    chosen = np.asarray(picks, dtype=np.int64)
    chosen_costs = None if costs is None else costs[chosen]
    estimated = None
    if chosen_costs is not None:
        estimated = 0.0
        for cost in chosen_costs.tolist():  # the same left fold the budget check used
            estimated = estimated + cost
    return Selection(
        frame_ids=ids[chosen], values=np.asarray(picked_values), acquisition_values=raw[chosen],
        class_weights=weights[chosen], decided_by=tuple(decided), costs=chosen_costs, estimated_cost=estimated,
        stopped_by=stopped_by, policy=policy,
    )


def _decisive_signal(pick, eligible, raw, balanced, mixed, objective, distance_decided, policy, diversity_weight,
                     limited_by_money) -> str:
    """The first signal of the chain under which ``pick`` was the unique best eligible frame."""
    if _unique_best(raw, pick, eligible):
        return "acquisition_value"
    if policy.uses_class_balance and _unique_best(balanced, pick, eligible):
        return "class_balance"
    if diversity_weight > 0 and _unique_best(mixed, pick, eligible):
        return "diversity"
    if limited_by_money and _unique_best(objective, pick, eligible):
        return "value_per_cost"
    return "diversity" if distance_decided else "tie_break_frame_id"
