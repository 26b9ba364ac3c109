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


def _validate_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if math.isnan(temperature) or temperature <= 0:
        raise ValueError(
            f"temperature must be > 0 (use a small value such as 1e-3 for greedy top-m, "
            f"float('inf') for uniform sampling), got {temperature!r}"
        )
    return temperature


def tempered_softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``exp(v_i / T) / sum_j exp(v_j / T)`` of finite ``values``, ``(N,)``.

    Subtracts the maximum before exponentiating (the log-sum-exp trick) so a
    small ``T`` cannot overflow; ``T = inf`` gives the uniform distribution.
    """
    temperature = _validate_temperature(temperature)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty (N,) array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values must be finite; fill never-scored frames with a prior first")
    if math.isinf(temperature):
        return np.full(values.size, 1.0 / values.size)
    z = values / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def _log_exponentials(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 ``log(E)``, ``E ~ Exp(1)`` i.i.d.: minus standard Gumbel noise.

    Keys are formed as ``logit - log(E)`` (identical to ``logit + G`` in IEEE
    arithmetic) to save a pass over N. numpy's float32 ziggurat exponential
    plus a float32 log is ~4x cheaper than ``rng.gumbel`` at 10^7 frames. The
    float32 ziggurat returns exactly 0 with probability ~2^-24, which would be
    a ``+inf`` key (a frame included whatever its logit), so zeros are redrawn.
    """
    exponential = rng.standard_exponential(n, dtype=np.float32)
    if not exponential.all():  # one cheap pass; the redraw itself is rare
        zeros = np.flatnonzero(exponential == 0)
        while zeros.size:
            exponential[zeros] = rng.standard_exponential(zeros.size, dtype=np.float32)
            zeros = zeros[exponential[zeros] == 0]
    return np.log(exponential, out=exponential)


def gumbel_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` i.i.d. standard Gumbel noise as float32, the draws every sampler here uses."""
    return np.negative(_log_exponentials(n, rng))


def _kth_largest(values: np.ndarray, k: int, margin: float = 0.0) -> tuple[float, np.ndarray]:
    """The ``k``-th largest of ``values`` (``1 <= k <= n``) and the ascending
    indices of all values ``>= kth - margin``, in O(n).

    A strided subsample gives a value safely below the answer; only the values
    above it are partitioned, which for k << n avoids copying and partitioning
    the whole array. If the guess was too high (fewer than ``k`` values above
    it), everything is partitioned instead.
    """
    n = values.size
    if n > 2**18 and k < n // 4:
        sample = values[:: n // 2**16]
        # The sample's estimate of the k-th largest, lowered by 4 standard deviations.
        expected = k / n * sample.size
        spare = int(expected + 4 * math.sqrt(expected) + 8)
        if spare < sample.size:
            guess = float(np.partition(sample, sample.size - spare)[sample.size - spare])
            above = np.flatnonzero(values >= guess - margin)
            above_values = values[above]
            if int(np.count_nonzero(above_values >= guess)) >= k:
                kth = float(np.partition(above_values, above_values.size - k)[above_values.size - k])
                return kth, above[above_values >= kth - margin]
    kth = float(np.partition(values, n - k)[n - k])
    return kth, np.flatnonzero(values >= kth - margin)


def _top_k_by_key(keys: np.ndarray, k: int) -> np.ndarray:
    """Ascending indices of the ``k`` largest ``keys``; equal keys go to the lower index."""
    n = keys.size
    if k >= n:
        return np.arange(n, dtype=np.int64)
    threshold, candidates = _kth_largest(keys, k)
    top = keys[candidates]
    tied = candidates[top == threshold][: k - int(np.count_nonzero(top > threshold))]
    return np.union1d(candidates[top > threshold], tied).astype(np.int64)


def gumbel_top_k(logits: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sample ``k`` distinct indices with probabilities ``softmax(logits)``, without replacement.

    Gumbel-top-k: ``argtop_k(logits_i + G_i)`` with ``G_i`` i.i.d. standard
    Gumbel is distributed exactly like ``k`` successive softmax draws, each
    renormalised over what is left. Returns ``(k,)`` int64 indices in draw
    order (largest perturbed logit first; equal keys by index). O(N) plus
    O(k log k) for the order.
    """
    logits = np.asarray(logits, dtype=np.float64)
    n = logits.size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an int in [0, {n}] (the number of logits), got {k!r}")
    if n and not np.isfinite(logits).all():
        raise ValueError("logits must be finite (a temperature too close to 0 overflows them)")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = logits - _log_exponentials(n, rng)
    top = _top_k_by_key(keys, k)
    return top[np.lexsort((top, -keys[top]))]


#: Below this many scored frames the rank path simply sorts.
_BUCKETED_RANKS_FROM = 2**16
#: A bucket holding more than this share of all frames is checked for being one tied value.
_TIE_CHECK_SHARE = 0.002


@dataclass(frozen=True)
class _RankBuckets:
    """Scores cut into value buckets; see :func:`_rank_buckets`.

    ``bucket[i]`` is frame ``i``'s bucket, ``n_buckets`` (one past the last) for a
    never-scored frame. ``logit_lo/hi`` (length ``n_buckets + 1``) bound the rank
    logit of the frames in each bucket, the last entry being the prior's logit.
    """

    bucket: np.ndarray
    start: np.ndarray
    counts: np.ndarray
    logit_lo: np.ndarray
    logit_hi: np.ndarray


def _rank_buckets(scores: np.ndarray, n_scored: int, alpha: float, prior_logit: float) -> _RankBuckets | None:
    """Bucket the scores in O(N) and bound each frame's rank logit ``rank * alpha``.

    Buckets come from a monotone map (affine, clipped, floored), so every value
    in a lower bucket is strictly smaller: a value's average rank lies in
    ``[start_b, start_b + count_b - 1]``, and is exactly ``start_b + (count_b - 1) / 2``
    when the bucket holds one tied value. The exact logit of rank ``r`` is
    computed as ``r * alpha`` too, so bounds and exact values are ordered bit
    for bit. Returns ``None`` when the score range overflows float64.
    """
    n = scores.size
    # Range from a strided subsample's 0.1 % and 99.9 % quantiles, so one
    # outlier does not squeeze everything into a few buckets; the tails beyond
    # share the end buckets.
    sample = scores[:: max(1, n // 2**16)]
    sample = sample[~np.isnan(sample)]
    if sample.size < 2:
        return None
    lo, hi = (float(x) for x in np.quantile(sample, [0.001, 0.999]))
    if not hi > lo:
        lo, hi = float(np.nanmin(scores)), float(np.nanmax(scores))
    if not math.isfinite(hi - lo):
        return None
    # ~128 values per bucket keeps the per-bucket tables (<= 512 KiB) in cache
    # for the N random look-ups; the rank uncertainty this leaves is resolved
    # exactly later, for the few frames it matters to.
    n_buckets = int(min(max(n_scored // 128, 1024), 2**16))
    x = np.empty(n, dtype=np.float32)  # any monotone map will do, float32 is enough
    with np.errstate(over="ignore", invalid="ignore"):  # far outliers overflow to inf: clipped next
        np.subtract(scores, lo, out=x, casting="same_kind")
        x *= np.float32(n_buckets / (hi - lo))
    np.clip(x, 0, n_buckets - 1, out=x)
    if n_scored < n:
        np.nan_to_num(x, copy=False, nan=n_buckets)  # never scored: the extra bucket
    bucket = x.astype(np.int32)
    del x
    counts = np.bincount(bucket, minlength=n_buckets + 1)[:n_buckets]
    start = np.cumsum(counts) - counts
    rank_lo = start.astype(np.float64)
    rank_hi = rank_lo + np.maximum(counts - 1, 0)
    # A big tie (every empty frame has the same entropy) fills one bucket. If the
    # bucket holds nothing else its rank is exact rather than a wide range.
    # The subsample names the candidate value; one comparison pass confirms it.
    heavy = np.flatnonzero(counts > max(_TIE_CHECK_SHARE * n_scored, 8 * n_scored / n_buckets))
    if heavy.size:
        sample_x = np.clip((sample - lo) * (n_buckets / (hi - lo)), 0, n_buckets - 1).astype(np.int64)
        for h in heavy:
            in_h = sample[sample_x == h]
            if in_h.size and np.count_nonzero(scores == in_h[0]) == counts[h]:
                rank_lo[h] = rank_hi[h] = start[h] + (counts[h] - 1) / 2.0
    return _RankBuckets(
        bucket=bucket,
        start=start,
        counts=counts,
        logit_lo=np.append(rank_lo * alpha, prior_logit),
        logit_hi=np.append(rank_hi * alpha, prior_logit),
    )


def _exact_ranks(scores: np.ndarray, buckets: _RankBuckets, which: np.ndarray) -> np.ndarray:
    """Exact average ranks of ``scores[which]`` (scored frames), sorting only the buckets they are in."""
    touched = np.zeros(buckets.counts.size + 1, dtype=bool)
    touched[buckets.bucket[which]] = True
    sorted_members = np.sort(scores[touched[buckets.bucket]])
    touched_counts = np.where(touched[:-1], buckets.counts, 0)
    touched_before = np.cumsum(touched_counts) - touched_counts
    v = scores[which]
    b = buckets.bucket[which]
    less = np.searchsorted(sorted_members, v, "left")
    equal = np.searchsorted(sorted_members, v, "right") - less
    return buckets.start[b] + (less - touched_before[b]) + (equal - 1) / 2.0


def rank_gumbel_top_k(scores: np.ndarray, prior_value: float, temperature: float, k: int,
                      rng: np.random.Generator, *, n_never_scored: int | None = None) -> np.ndarray:
    """Gumbel-top-k over rank-normalised ``scores`` (NaN = never scored, logit ``prior_value / T``).

    Picks exactly the frames that ``average_ranks -> / (n - 1) / T -> + Gumbel
    -> top k`` picks (equal keys go to the lower index) with the same noise,
    but without sorting all N scores: buckets bound each frame's rank (see
    :func:`_rank_buckets`); frames whose upper bound is below the k-th largest
    lower bound are out, frames that at most ``k`` upper bounds reach are in,
    and exact ranks are computed only for the few in between.
    ``n_never_scored`` (the number of NaN scores), when the caller knows it,
    saves a pass over the scores. Returns ascending indices.
    """
    n = scores.size
    log_e = _log_exponentials(n, rng)  # drawn first and in full: the seed alone fixes it
    if math.isinf(temperature):
        return _top_k_by_key(np.negative(log_e), k)
    if n_never_scored is None:
        # min() propagates NaN: one pass tells whether any frame is never scored.
        n_never_scored = 0 if not math.isnan(float(scores.min())) else int(np.count_nonzero(np.isnan(scores)))
    all_scored = n_never_scored == 0
    n_scored = n - n_never_scored
    prior_logit = prior_value / temperature
    buckets = None
    if n_scored >= _BUCKETED_RANKS_FROM:
        alpha = 1.0 / ((n_scored - 1) * temperature)
        buckets = _rank_buckets(scores, n_scored, alpha, prior_logit)
    if buckets is None:
        scored = slice(None) if all_scored else ~np.isnan(scores)
        values = scores[scored]
        logits = np.full(n, prior_logit)
        if n_scored <= 1 or values.min() == values.max():
            logits[scored] = 0.5 / temperature  # one distinct score normalises to 0.5
        else:
            logits[scored] = average_ranks(values) * (1.0 / ((n_scored - 1) * temperature))
        return _top_k_by_key(logits - log_e, k)

    # take(mode="clip") skips the bounds check of fancy indexing (buckets are
    # in range by construction): ~2x faster at 10^7 frames.
    lower = np.take(buckets.logit_lo, buckets.bucket, mode="clip")
    lower -= log_e
    # Only frames whose upper bound reaches the threshold (the k-th largest
    # lower bound) can be in the pool. The slack covers rounding in
    # (rank * alpha - log_e); it only adds frames to check.
    widest = float(np.max(buckets.logit_hi - buckets.logit_lo))
    slack = widest + 1e-9 * (abs(prior_logit) + 1.0 / temperature + widest + 100.0)
    threshold, maybe = _kth_largest(lower, k, margin=slack)
    low = lower[maybe]
    upper = np.take(buckets.logit_hi, buckets.bucket[maybe]) - log_e[maybe]
    keep = upper >= threshold
    maybe, low, upper = maybe[keep], low[keep], upper[keep]
    # In for sure: at most k upper bounds (its own included) reach its lower
    # bound, i.e. it beats the (k+1)-th largest upper bound.
    if upper.size > k:
        kth_plus_one = np.partition(upper, upper.size - k - 1)[upper.size - k - 1]
        sure = (low >= threshold) & (low > kth_plus_one)
    else:
        sure = np.ones(upper.size, dtype=bool)
    open_ = np.flatnonzero(~sure)
    exact = low[open_]
    needs_rank = np.flatnonzero(upper[open_] > exact)
    if needs_rank.size:
        frames = maybe[open_[needs_rank]]
        alpha = 1.0 / ((n_scored - 1) * temperature)
        exact[needs_rank] = _exact_ranks(scores, buckets, frames) * alpha - log_e[frames]
    slots = k - int(np.count_nonzero(sure))
    chosen = open_[np.lexsort((maybe[open_], -exact))[:slots]]
    return np.sort(np.concatenate([maybe[sure], maybe[chosen]])).astype(np.int64)


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
    lowest, highest = float(scores.min()), float(scores.max())
    has_never_scored = math.isnan(lowest)
    if has_never_scored or math.isinf(lowest) or math.isinf(highest):
        infinite = np.isinf(scores)
        if infinite.any():
            raise ValueError(
                f"frames {_name_frames(frame_ids, infinite)} have infinite acquisition scores; "
                "fix the scoring (an inf entropy means a degenerate covariance) and rescore them"
            )
    temperature = _validate_temperature(temperature)
    never_scored = np.isnan(scores) if has_never_scored else None
    n_never = int(np.count_nonzero(never_scored)) if has_never_scored else 0
    rng = np.random.default_rng(seed)
    if normalisation == "rank":
        prior_value = _prior_value(prior, normalisation, scores, scores.size - n_never)
        if abs(prior_value) / temperature > 1e300:
            raise ValueError(f"temperature={temperature!r} is so small that prior / temperature overflows; use >= 1e-12")
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
        indices = _top_k_by_key(logits - _log_exponentials(logits.size, rng), m)
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
