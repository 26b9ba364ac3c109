"""The candidate pool: CEAL's cheap pre-selection of frames worth rescoring.

Each round, CEAL rescores only ``m`` frames drawn *without replacement* from the
unlabeled pool with probability proportional to ``exp(s~_i / T)``, where ``s~_i``
is frame ``i``'s latest historical acquisition value after normalisation and
``T`` the temperature. Frames never scored take a prior value.

Sampling uses the Gumbel-top-k trick (Vieira 2014; Kool et al. 2019): adding
independent standard Gumbel noise to the logits ``s~_i / T`` and keeping the
``m`` largest gives exactly the distribution of ``m`` sequential softmax draws
without replacement, in O(N) with a partition and one seeded RNG call, so a
recorded seed reproduces the pool. With rank normalisation the ranks of all N
frames are not even computed: value buckets bound them, and only the frames
near the pool's threshold get exact ranks (:func:`rank_gumbel_top_k`).

Limits: ``T -> 0`` keeps the ``m`` highest scores (greedy); ``T -> inf`` is
uniform sampling. Rank normalisation (the default) maps scores to ``[0, 1]`` so
that ``T`` means the same thing for every acquisition function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.gumbel_top_k import (
    gumbel_top_k,
    rank_gumbel_top_k,
    value_range,
    validate_temperature,
)
from ceal_pipeline.core.ranks import average_ranks

NORMALISATIONS = ("rank", "zscore", "none")
PRIORS = ("optimistic", "pessimistic", "mean")
#: How many offending frame ids an error message lists before "...".
_MAX_IDS_IN_ERROR = 10


def _name_frames(frame_ids: np.ndarray, mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)
    shown = ", ".join(repr(frame_ids[i].item() if hasattr(frame_ids[i], "item") else frame_ids[i])
                      for i in bad[:_MAX_IDS_IN_ERROR])
    more = f" and {bad.size - _MAX_IDS_IN_ERROR} more" if bad.size > _MAX_IDS_IN_ERROR else ""
    return f"{shown}{more}"


def normalise_scores(scores: np.ndarray, method: str = "rank") -> np.ndarray:
    """Put acquisition values on a common scale before the tempered softmax.

    Args:
        scores: ``(N,)`` float; NaN marks a never-scored frame and stays NaN.
        method: ``"rank"`` (default): average rank / (n - 1), in ``[0, 1]``, so
            the temperature means the same for entropies in nats and for
            variation ratios (a single scored value maps to 0.5);
            ``"zscore"``: ``(s - mean) / std`` (all-equal scores map to 0);
            ``"none"``: the raw values.

    Returns:
        ``(N,)`` float64, monotone non-decreasing in the score.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; choose one of {NORMALISATIONS}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be (N,), got shape {scores.shape}")
    scored = ~np.isnan(scores)
    if np.isinf(scores).any():
        raise ValueError(f"scores contain infinities at positions {np.flatnonzero(np.isinf(scores))[:10].tolist()}")
    if method == "none":
        return scores.copy()
    out = np.full(scores.shape, np.nan)
    values = scores[scored]
    if values.size == 0:
        return out
    if method == "rank":
        out[scored] = 0.5 if values.size == 1 else average_ranks(values) / (values.size - 1)
    else:
        std = values.std()
        out[scored] = (values - values.mean()) / std if std > 0 else 0.0
    return out


def pool_size(n_available: int, fraction: float | None = None, count: int | None = None) -> int:
    """Number of frames ``m`` in the candidate pool: ``fraction`` (alpha) of the pool or a fixed ``count``.

    ``round(fraction * n_available)``, at least 1; exactly one of the two must be given.
    """
    if isinstance(n_available, bool) or not isinstance(n_available, (int, np.integer)) or n_available < 0:
        raise ValueError(f"n_available must be a non-negative int, got {n_available!r}")
    if n_available == 0:
        raise ValueError(
            "the unlabeled pool is empty: there is nothing to sample a candidate pool from "
            "(every frame is labeled, pruned or quarantined; ingest new frames or un-prune)"
        )
    if (fraction is None) == (count is None):
        raise ValueError(
            f"give exactly one of fraction (alpha, share of the pool) or count (frames); "
            f"got fraction={fraction!r}, count={count!r}"
        )
    if fraction is not None:
        fraction = float(fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r} (use count= for a fixed number of frames)")
        # floor(x + 0.5) rather than round() (banker's rounding) and rather than
        # ceil(), which turns 0.07 * 100 = 7.000000000000001 into 8.
        return max(1, min(n_available, int(math.floor(fraction * n_available + 0.5))))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if count > n_available:
        raise ValueError(
            f"count={count} candidates requested but only {n_available} frames are available; "
            f"lower count to at most {n_available} or use fraction="
        )
    return int(count)


@dataclass(frozen=True)
class CandidatePool:
    """One round's candidate pool and everything needed to reproduce it.

    ``frame_ids`` and ``indices`` (positions in the arrays passed to
    :func:`sample_candidate_pool`) are in ascending index order; ``scores`` are
    the members' historical scores (NaN for never-scored frames).
    """

    frame_ids: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    seed: int
    temperature: float
    normalisation: str
    prior: str | float
    prior_value: float
    n_available: int
    n_never_scored: int

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def size(self) -> int:
        return len(self)


def _prior_value(prior: str | float, normalisation: str, scores: np.ndarray, n_scored: int) -> float:
    """The never-scored frames' value in normalised units (see :func:`sample_candidate_pool`)."""
    if not isinstance(prior, str):
        value = float(prior)
        if not math.isfinite(value):
            raise ValueError(f"a numeric prior must be finite, got {prior!r}")
        return value
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {PRIORS} or a float (in normalised units)")
    if n_scored == 0:
        return 0.0  # nothing scored yet: every frame has the same logit, sampling is uniform
    if normalisation == "rank":
        # Ranks / (n - 1) span [0, 1] with mean 0.5; no need to rank for this.
        if n_scored == 1:
            return 0.5
        return {"optimistic": 1.0, "pessimistic": 0.0, "mean": 0.5}[prior]
    reduce = {"optimistic": np.nanmax, "pessimistic": np.nanmin, "mean": np.nanmean}[prior]
    return float(reduce(scores))


def sample_candidate_pool(
    frame_ids: np.ndarray,
    scores: np.ndarray,
    *,
    temperature: float,
    fraction: float | None = None,
    count: int | None = None,
    normalisation: str = "rank",
    prior: str | float = "optimistic",
    seed: int,
) -> CandidatePool:
    """Draw the round's candidate pool (CEAL, Algorithm 1: the softmax pre-selection).

    Args:
        frame_ids: ``(N,)`` ids of the unlabeled, unpruned frames (unique).
        scores: ``(N,)`` each frame's latest acquisition value; NaN for a frame
            never scored. Infinite values are rejected.
        temperature: ``T > 0`` in normalised-score units; ``inf`` = uniform.
        fraction, count: pool size as a share alpha of ``N`` or a fixed number
            (exactly one, see :func:`pool_size`).
        normalisation: see :func:`normalise_scores`.
        prior: value of never-scored frames: ``"optimistic"`` (the best
            normalised score, so new data gets looked at), ``"pessimistic"``
            (the worst), ``"mean"``, or a float in normalised units (for rank
            normalisation: a position in ``[0, 1]``).
        seed: the RNG seed, normally ``seeding.derive_seed(run_seed, round)``;
            the same inputs and seed give the same pool.

    With rank normalisation the pool is drawn by :func:`rank_gumbel_top_k`,
    which needs no full sort (10^7 frames: see ``ceal bench sampling``).
    """
    frame_ids = np.asarray(frame_ids)
    scores = np.asarray(scores, dtype=np.float64)
    if frame_ids.ndim != 1 or scores.shape != frame_ids.shape:
        raise ValueError(f"frame_ids and scores must both be (N,); got {frame_ids.shape} and {scores.shape}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {NORMALISATIONS}")
    m = pool_size(int(frame_ids.size), fraction=fraction, count=count)
    # Two reductions instead of full isnan/isinf masks (10^7 frames): min()
    # propagates NaN, and an infinity shows up as the min or the max.
    lowest, highest = value_range(scores)
    has_never_scored = math.isnan(lowest)
    if has_never_scored or math.isinf(lowest) or math.isinf(highest):
        infinite = np.isinf(scores)
        if infinite.any():
            raise ValueError(
                f"frames {_name_frames(frame_ids, infinite)} have infinite acquisition scores; "
                "fix the scoring (an inf entropy means a degenerate covariance) and rescore them"
            )
    temperature = validate_temperature(temperature)
    never_scored = np.isnan(scores) if has_never_scored else None
    n_never = int(np.count_nonzero(never_scored)) if has_never_scored else 0
    rng = np.random.default_rng(seed)
    if normalisation == "rank":
        prior_value = _prior_value(prior, normalisation, scores, scores.size - n_never)
        if abs(prior_value) / temperature > 1e300:
            raise ValueError(
                f"temperature={temperature!r} is so small that prior / temperature overflows; use >= 1e-12"
            )
        indices = rank_gumbel_top_k(scores, prior_value, temperature, m, rng, n_never_scored=n_never)
    else:
        normalised = normalise_scores(scores, normalisation)
        prior_value = _prior_value(prior, normalisation, normalised, scores.size - n_never)
        if has_never_scored:
            normalised[never_scored] = prior_value
        logits = np.zeros_like(normalised) if math.isinf(temperature) else normalised / temperature
        if not np.isfinite(logits).all():
            raise ValueError(
                f"temperature={temperature!r} is so small that scores / temperature overflows; raise it"
            )
        indices = np.sort(gumbel_top_k(logits, m, rng))  # the pool is kept in index order
    return CandidatePool(
        frame_ids=frame_ids[indices],
        indices=indices,
        scores=scores[indices],
        seed=int(seed),
        temperature=temperature,
        normalisation=normalisation,
        prior=prior,
        prior_value=prior_value,
        n_available=int(frame_ids.size),
        n_never_scored=n_never,
    )
