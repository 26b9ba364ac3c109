"""Pruning: frames whose acquisition value stays low leave the unlabeled pool.

A frame that lands in the bottom of its round again and again (an empty
highway, a parked car park) is unlikely to become informative, yet the optimistic
softmax keeps giving it some chance of being rescored. Pruning removes it from
sampling. The score events stay in the acquisition history, so pruning is
reversible by clearing the pruned mark.

Rule: a frame is pruned when each of its last ``last_m`` scores was in the
bottom ``quantile`` of the round it was scored in, where the round's quantile is
taken over all scores of that round. Frames with fewer than ``last_m`` scores are
never pruned: there is not yet evidence that they are persistently low.
"""

from __future__ import annotations

import numpy as np

_MAX_IDS_IN_ERROR = 10


def round_quantiles(round_codes: np.ndarray, scores: np.ndarray, n_rounds: int, quantile: float) -> np.ndarray:
    """The ``quantile`` of the scores of each round, ``(n_rounds,)``, vectorised.

    Equals ``np.quantile(scores[round_codes == r], quantile)`` (linear
    interpolation) for every ``r`` that has scores; NaN for a round without.
    """
    order = np.lexsort((scores, round_codes))
    ordered = scores[order]
    counts = np.bincount(round_codes, minlength=n_rounds)
    starts = np.cumsum(counts) - counts
    out = np.full(n_rounds, np.nan)
    present = counts > 0
    position = (counts[present] - 1) * quantile
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, counts[present] - 1)
    lo = ordered[starts[present] + below]
    hi = ordered[starts[present] + above]
    out[present] = lo + (position - below) * (hi - lo)
    return out


def persistently_low(
    frame_ids: np.ndarray,
    rounds: np.ndarray,
    scores: np.ndarray,
    last_m: int = 3,
    quantile: float = 0.2,
    floor: float | None = None,
) -> np.ndarray:
    """Frame ids to prune, from score events ``(frame_id, round, score)``.

    Args:
        frame_ids, rounds, scores: ``(E,)`` score events, e.g. the whole
            acquisition history. If a frame has several events in one round the
            last one in input order counts (pass events ordered by ``scored_at``).
        last_m: how many of a frame's most recent scores must all be low.
        quantile: a score is low when it is *strictly below* the ``quantile`` of
            its round (linear interpolation, as ``np.quantile``). Strict, so
            that a round in which every frame scored the same prunes nobody.
        floor: if given, a score is low only when it is also below this
            absolute value (same units as the scores), so a round in which every
            frame is informative cannot prune anything.

    Returns:
        Sorted unique frame ids to prune.
    """
    ids = np.asarray(frame_ids)
    rounds = np.asarray(rounds)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or rounds.shape != ids.shape or scores.shape != ids.shape:
        raise ValueError(
            f"frame_ids, rounds and scores must all be (E,); got {ids.shape}, {rounds.shape}, {scores.shape}"
        )
    if isinstance(last_m, bool) or not isinstance(last_m, (int, np.integer)) or last_m < 1:
        raise ValueError(f"last_m must be an int >= 1, got {last_m!r}")
    if not 0.0 < float(quantile) < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    if floor is not None and not np.isfinite(floor):
        raise ValueError(f"floor must be a finite number or None, got {floor!r}")
    if ids.size == 0:
        return ids[:0]
    if rounds.size and not np.issubdtype(rounds.dtype, np.integer):
        raise ValueError(f"rounds must be integers, got dtype {rounds.dtype}")
    bad = ~np.isfinite(scores)
    if bad.any():
        shown = ", ".join(repr(i) for i in ids[bad][:_MAX_IDS_IN_ERROR].tolist())
        raise ValueError(
            f"score events of frames {shown} have non-finite scores; "
            "NaN or inf must not reach the acquisition history (fix and re-ingest the shard)"
        )
    if ids.dtype == object:
        ids = ids.astype(str)
    frame_values, frame_codes = np.unique(ids, return_inverse=True)
    round_values, round_codes = np.unique(rounds, return_inverse=True)
    frame_codes = frame_codes.ravel()
    round_codes = round_codes.ravel()

    # One event per (frame, round): the last in input order.
    order = np.lexsort((np.arange(ids.size), round_codes, frame_codes))
    f, r, s = frame_codes[order], round_codes[order], scores[order]
    last_of_pair = np.r_[(f[1:] != f[:-1]) | (r[1:] != r[:-1]), True]
    f, r, s = f[last_of_pair], r[last_of_pair], s[last_of_pair]

    thresholds = round_quantiles(r, s, round_values.size, float(quantile))
    low = s < thresholds[r]
    if floor is not None:
        low &= s < floor

    # Events are sorted by (frame, round); count each event's distance from
    # its frame's last event to keep the most recent last_m per frame.
    events_per_frame = np.bincount(f, minlength=frame_values.size)
    frame_end = np.cumsum(events_per_frame)
    from_end = frame_end[f] - 1 - np.arange(f.size)
    recent = from_end < last_m
    low_recent = np.bincount(f, weights=(recent & low).astype(np.float64), minlength=frame_values.size)
    prune = (events_per_frame >= last_m) & (low_recent == last_m)
    return frame_values[prune]
