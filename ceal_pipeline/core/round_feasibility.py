"""Can a round buy K frames? Asked when the round opens and again at selection, in one wording.

A K the round cannot meet used to surface only at selection, after training and
scoring (hours on a GPU preset). The candidate pool bounds what selection can buy:
at most its size, and under a per-sequence cap at most ``min(frames, cap)`` per
sequence. ``candidate_pool`` refuses such a K before the round is recorded, and
``selected_batch`` refuses it (with the same sentence) when pruning or pending
exports left fewer candidates than the pool had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def buyable(sequence_ids: Sequence[str], per_sequence_cap: int = 0) -> int:
    """How many of these candidates (given by their sequences) a selection may buy: all of them
    without a cap (``0``), else at most ``per_sequence_cap`` of each sequence."""
    if per_sequence_cap < 0:
        raise ValueError(f"per_sequence_cap must be >= 0 (0 = no cap), got {per_sequence_cap}")
    if per_sequence_cap == 0:
        return len(sequence_ids)
    return sum(min(n, per_sequence_cap) for n in Counter(sequence_ids).values())


def k_shortfall(round_index: int, k: int, sequence_ids: Sequence[str], per_sequence_cap: int = 0,
                *, candidates: str = "candidates") -> str | None:
    """None when K of these candidates can be bought; else the sentence both stages fail with,
    naming the numbers and the settings to change. ``candidates`` says which frames these are."""
    can = buyable(sequence_ids, per_sequence_cap)
    if k <= can:
        return None
    n_sequences = len(set(sequence_ids))
    capped = (f" ({len(sequence_ids)} frames from {n_sequences} sequence{'s' if n_sequences != 1 else ''}, at most "
              f"{per_sequence_cap} per sequence)") if per_sequence_cap and can < len(sequence_ids) else ""
    fixes = "lower k, draw a larger candidate pool (pool_fraction / pool_count)"
    fixes += " or raise per_sequence_cap (0 = no cap)" if capped else ""
    return f"round {round_index}: K={k} but only {can} {candidates} can be bought{capped}; {fixes}"
