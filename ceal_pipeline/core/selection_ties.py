"""Was a round's selection decided by the scores, or by a tie-break?

Ties must never decide a round silently (DESIGN.md: selection). When every
candidate gets the same value (a detector that finds nothing yet scores each
frame at localization entropy's empty-frame floor) top-K still returns K frames,
ordered by the tie-break (frame id), and every check on counts passes. This
compares the bought frames' scores with those of the candidates left out: a
bought frame whose score equals a left-out candidate's was bought by the
tie-break, not by its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scores closer than this (nats) are the same value: float noise, not information.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SelectionTies:
    """How far a selection's scores tell its frames apart."""

    selected: int
    distinct_selected_scores: int
    tied_with_left_out: int  # bought frames whose score equals a left-out candidate's
    left_out_tied: int  # left-out candidates whose score equals a bought frame's
    boundary_score: float  # the lowest bought score (NaN when nothing was bought)
    best_left_out_score: float  # NaN when nothing was left out

    @property
    def decided_by_ties(self) -> bool:
        """True when some bought frame could have been swapped for a left-out one of the same score,
        or when the bought frames (more than one) all have one score."""
        return self.tied_with_left_out > 0 or (self.selected > 1 and self.distinct_selected_scores == 1)


def selection_ties(selected_scores, left_out_scores, tolerance: float = TIE_TOLERANCE) -> SelectionTies:
    """Compare the bought frames' scores with the left-out candidates' (both ``(N,)`` finite, nats)."""
    chosen = np.sort(np.asarray(selected_scores, dtype=np.float64))
    rest = np.sort(np.asarray(left_out_scores, dtype=np.float64))
    distinct = int(np.sum(np.diff(chosen) > tolerance)) + 1 if chosen.size else 0
    if chosen.size and rest.size:
        # For each value, is there one on the other side within the tolerance? (both sorted)
        def near(values, others):
            right = np.searchsorted(others, values - tolerance, side="left")
            found = right < others.size
            return found & (np.abs(others[np.minimum(right, others.size - 1)] - values) <= tolerance)

        tied, left_tied = int(near(chosen, rest).sum()), int(near(rest, chosen).sum())
    else:
        tied = left_tied = 0
    return SelectionTies(
        selected=int(chosen.size), distinct_selected_scores=distinct, tied_with_left_out=tied,
        left_out_tied=left_tied, boundary_score=float(chosen[0]) if chosen.size else float("nan"),
        best_left_out_score=float(rest[-1]) if rest.size else float("nan"),
    )
