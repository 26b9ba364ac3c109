"""Average ranks of acquisition values, exact and fast at 10^7 frames.

Rank normalisation (the default before the tempered softmax) needs each frame's
rank among the scored frames; ties share their average rank so that equal
scores get equal sampling probability.
"""

from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks of finite ``values``, equal values sharing their average rank (float64).

    Matches ``scipy.stats.rankdata(values, method="average") - 1``.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return np.zeros(0)
    order = np.argsort(values)  # ties are averaged below, so stability is not needed
    ordered = values[order]
    ranks = np.empty(n, dtype=np.float64)
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_run[1:])
    if new_run.all():
        ranks[order] = np.arange(n, dtype=np.float64)
        return ranks
    # Tied values form runs in sorted order; each run gets the mean of the
    # positions it spans, (first + last) / 2.
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n) - 1
    ranks[order] = np.repeat((starts + ends) / 2.0, ends - starts + 1)
    return ranks
