"""Average ranks of acquisition values, exact and fast at 10^7 frames.

Rank normalisation (the default before the tempered softmax) needs each frame's
rank among the scored frames; ties share their average rank so that equal
scores get equal sampling probability. Rank combinations
(:func:`rank_normalised_combination`) add terms of different units by their
scaled ranks.
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


def rank_normalised_combination(terms: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted sum of each term's average rank over the frames, scaled to [0, 1] per term.

    ``terms`` maps a name to ``(N,)`` finite values of the same ``N`` frames (larger =
    more worth labeling); ``weights`` (default 1 each) multiply the scaled ranks. Tied
    values share their average rank; a single frame gets 0.5 per term. The result
    depends on the whole set of frames: combine over a round's candidates, never per
    scoring batch or shard.
    """
    if not terms:
        raise ValueError("rank_normalised_combination needs at least one term")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"weights for unknown terms {unknown}; terms: {sorted(terms)}")
    bad_weights = {name: w for name, w in weights.items() if not np.isfinite(w) or w < 0}
    if bad_weights:
        raise ValueError(f"term weights must be finite and >= 0, got {bad_weights}")
    shapes = {name: np.shape(values) for name, values in terms.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ValueError(f"every term must be (N,) over the same frames, got shapes {shapes}")
    n = next(iter(shapes.values()))[0]
    total = np.zeros(n)
    for name, values in terms.items():
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"term {name!r} has non-finite values at frames "
                             f"{np.flatnonzero(~np.isfinite(values))[:5].tolist()}; rescore those frames")
        scaled = average_ranks(values) / (n - 1) if n > 1 else np.full(n, 0.5)
        total += float(weights.get(name, 1.0)) * scaled
    return total
