"""Gumbel-top-k: sampling without replacement from a tempered softmax in O(N).

Adding i.i.d. standard Gumbel noise to the logits ``s~_i / T`` and keeping the
``k`` largest gives exactly the distribution of ``k`` sequential softmax draws
without replacement (Vieira 2014; Kool et al. 2019). This module holds the noise,
the partial selection of the ``k`` largest keys, and the rank-normalised variant
that computes exact ranks only near the pool's cut-off instead of sorting all
N scores, and turns uniforms into Gumbel noise only for the few frames that can
reach the cut-off.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ceal_pipeline.core.ranks import average_ranks


def validate_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if math.isnan(temperature) or temperature <= 0:
        raise ValueError(
            f"temperature must be > 0 (use a small value such as 1e-3 for greedy top-m, "
            f"float('inf') for uniform sampling), got {temperature!r}"
        )
    return temperature


#: Frames per chunk of the O(N) passes. Fixed (not derived from the core count)
#: so that the noise drawn for a seed is the same on every machine.
_CHUNK = 1 << 21


def _spans(n: int) -> list[tuple[int, int]]:
    return [(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]


def _in_parallel(task: Callable[[int, int, int], object], n: int) -> list:
    """Run ``task(chunk_index, start, stop)`` over fixed chunks of ``range(n)``.

    numpy's ufuncs, ``take`` and bulk random fills release the GIL, so a thread
    per core makes the O(N) passes at 10^7 frames scale with the cores; the
    results do not depend on how many threads there are.
    """
    spans = _spans(n)
    workers = min(len(spans), os.cpu_count() or 1)
    if workers <= 1:
        return [task(i, a, b) for i, (a, b) in enumerate(spans)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: task(item[0], *item[1]), enumerate(spans)))


def value_range(values: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of a float array in one chunk-parallel pass each; NaN if any value is NaN."""
    if values.size == 0:
        raise ValueError("value_range of an empty array")
    parts = np.array(_in_parallel(lambda _, a, b: (values[a:b].min(), values[a:b].max()), values.size))
    return float(parts[:, 0].min()), float(parts[:, 1].max())


def _fill_uniforms(out: np.ndarray, rng: np.random.Generator) -> None:
    """Fill float32 ``out`` with uniforms in ``(0, 1)``, a block of ``_BLOCK``
    at a time, each block's zeros redrawn (``U = 0``, probability 2^-24, would
    give ``E = 0``, a ``+inf`` key). :func:`_frames_reaching` draws the same
    stream block by block."""
    for begin in range(0, out.size, _BLOCK):
        _fill_uniform_block(out[begin: begin + _BLOCK], rng)


def _fill_uniform_block(out: np.ndarray, rng: np.random.Generator) -> None:
    rng.random(out.size, dtype=np.float32, out=out)
    if not out.all():  # one cheap pass; the redraw itself is rare
        zeros = np.flatnonzero(out == 0)
        while zeros.size:
            out[zeros] = rng.random(zeros.size, dtype=np.float32)
            zeros = zeros[out[zeros] == 0]


def _uniforms_to_log_exponentials(uniform: np.ndarray) -> np.ndarray:
    """``log(E)`` with ``E = -log(1 - U)``, in place on float32 ``uniform``; returns it."""
    np.negative(uniform, out=uniform)
    np.log1p(uniform, out=uniform)  # log(1 - U) = -E, in (-17, 0)
    np.negative(uniform, out=uniform)
    return np.log(uniform, out=uniform)


def _uniform_streams(n: int, rng: np.random.Generator) -> list[np.random.Generator]:
    """The generator each chunk of ``range(n)`` draws its uniforms from.

    One independent child stream of ``rng``'s seed sequence per chunk
    (``SeedSequence.spawn``), so the noise of a seed does not depend on how
    many threads fill it. The children are PCG64DXSM, numpy's recommended
    successor of PCG64, which fills float32 uniforms about twice as fast.
    """
    return [np.random.Generator(np.random.PCG64DXSM(child))
            for child in rng.bit_generator.seed_seq.spawn(len(_spans(n)))]


def _log_exponentials(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 ``log(E)``, ``E ~ Exp(1)`` i.i.d.: minus standard Gumbel noise.

    Keys are formed as ``logit - log(E)`` (identical to ``logit + G`` in IEEE
    arithmetic) to save a pass over N. ``E = -log(1 - U)`` from float32
    uniforms with vectorised float32 logs is ~2x cheaper than numpy's
    (scalar, branchy) exponential ziggurat and ~4x cheaper than ``rng.gumbel``
    at 10^7 frames. Chunks are filled in parallel from :func:`_uniform_streams`.
    """
    out = np.empty(n, dtype=np.float32)
    streams = _uniform_streams(n, rng)

    def fill(i: int, a: int, b: int) -> None:
        _fill_uniforms(out[a:b], streams[i])
        _uniforms_to_log_exponentials(out[a:b])

    _in_parallel(fill, n)
    return out


def gumbel_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` i.i.d. standard Gumbel noise as float32, the draws every sampler here uses."""
    return np.negative(_log_exponentials(n, rng))


def _kth_largest(values: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """The ``k``-th largest of ``values`` (``1 <= k <= n``) and the ascending
    indices of all values ``>= kth``, in O(n).

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
            above = np.concatenate(
                _in_parallel(lambda _, a, b: np.flatnonzero(values[a:b] >= guess) + a, n)
            )
            if above.size >= k:
                above_values = values[above]
                kth = float(np.partition(above_values, above_values.size - k)[above_values.size - k])
                return kth, above[above_values >= kth]
    kth = float(np.partition(values, n - k)[n - k])
    return kth, np.flatnonzero(values >= kth)


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
    keys = logits + gumbel_noise(n, rng)
    top = _top_k_by_key(keys, k)
    return top[np.lexsort((top, -keys[top]))]


#: Frames per block inside a chunk: float32 scratch of this size stays in the L2 cache.
_BLOCK = 1 << 18
#: Most score buckets: with the never-scored bucket, an index fits in a uint16.
_MAX_BUCKETS = 2**16 - 1
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
    for bit. Returns ``None`` for a single distinct value or a range beyond float64.
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
    if not hi > lo or not math.isfinite(hi - lo):
        return None  # one distinct value, or a range beyond float64: the caller sorts
    # ~128 values per bucket keeps the per-bucket tables (<= 512 KiB) in cache
    # for the N random look-ups; the rank uncertainty this leaves is resolved
    # exactly later, for the few frames it matters to. At most 65,535 buckets
    # plus the never-scored one, so a frame's bucket fits in a uint16.
    n_buckets = int(min(max(n_scored // 128, 1024), _MAX_BUCKETS))
    bucket = np.empty(n, dtype=np.uint16)
    scale = np.float32(n_buckets / (hi - lo))

    def bucket_chunk(_: int, a: int, b: int) -> np.ndarray:
        x = np.empty(min(_BLOCK, b - a), dtype=np.float32)  # any monotone map will do, float32 is enough
        counts = np.zeros(n_buckets + 1, dtype=np.int64)
        for begin in range(a, b, _BLOCK):  # a block at a time, so x and the block's buckets stay in cache
            end = min(begin + _BLOCK, b)
            y = x[: end - begin]
            with np.errstate(over="ignore", invalid="ignore"):  # far outliers overflow to inf: clipped next
                np.subtract(scores[begin:end], lo, out=y, casting="same_kind")
                y *= scale
            np.clip(y, 0, n_buckets - 1, out=y)
            if n_scored < n:
                np.nan_to_num(y, copy=False, nan=n_buckets)  # never scored: the extra bucket
            bucket[begin:end] = y
            counts += np.bincount(bucket[begin:end], minlength=n_buckets + 1)
        return counts

    counts = np.sum(_in_parallel(bucket_chunk, n), axis=0)[:n_buckets]
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
    # The uint16 buckets of all N frames are scanned chunk-parallel, a
    # cache-sized block at a time; only the members' scores are gathered and sorted.
    def members_in(_: int, a: int, b: int) -> list[np.ndarray]:
        return [scores[begin + np.flatnonzero(np.take(touched, buckets.bucket[begin: min(begin + _BLOCK, b)],
                                                      mode="clip"))]
                for begin in range(a, b, _BLOCK)]

    members = [part for chunk in _in_parallel(members_in, scores.size) for part in chunk]
    sorted_members = np.sort(np.concatenate(members))
    touched_counts = np.where(touched[:-1], buckets.counts, 0)
    touched_before = np.cumsum(touched_counts) - touched_counts
    v = scores[which]
    b = buckets.bucket[which]
    less = np.searchsorted(sorted_members, v, "left")
    equal = np.searchsorted(sorted_members, v, "right") - less
    return buckets.start[b] + (less - touched_before[b]) + (equal - 1) / 2.0


def _rank_logit_scale(n_scored: int, temperature: float) -> float:
    """``alpha``: rank ``r`` of ``n_scored`` scored frames has the logit ``r * alpha``."""
    return 1.0 / ((n_scored - 1) * temperature)


def _key_floor(buckets: _RankBuckets, n_never_scored: int, k: int) -> float:
    """A key ``t`` that at least ``k`` frames' lower-bound keys reach, but for a
    probability below 1e-9; ``-inf`` when ``k`` is too close to N for a floor.

    The expected number of lower-bound keys ``logit_lo + G`` at or above ``t``
    is ``sum_b count_b * P(G >= t - logit_lo_b)``, a sum of independent
    Bernoullis, so its standard deviation is below the square root of its
    mean: ``t`` is set where that expectation is ``k + 6 sqrt(k) + 32``. The
    buckets are merged into at most 1,024 groups of consecutive buckets, each
    at its lowest logit, which only lowers the expectation and so ``t``.
    """
    scored = buckets.counts.size
    step = max(1, -(-scored // 1024))
    starts = np.arange(0, scored, step)
    logits = np.append(buckets.logit_lo[:-1][starts], buckets.logit_lo[-1])
    counts = np.append(np.add.reduceat(buckets.counts, starts), n_never_scored).astype(np.float64)
    target = k + 6.0 * math.sqrt(k) + 32.0
    if target >= 0.5 * counts.sum():
        return -math.inf

    def expected_at_or_above(t: float) -> float:
        return float(np.dot(counts, -np.expm1(-np.exp(np.minimum(logits - t, 700.0)))))

    low, high = float(logits.min()) - 40.0, float(logits.max()) + 40.0
    for _ in range(60):  # bisection: f(low) >= target > f(high)
        middle = 0.5 * (low + high)
        if expected_at_or_above(middle) >= target:
            low = middle
        else:
            high = middle
    return low


def _frames_reaching(buckets: _RankBuckets, floor: float, streams: list[np.random.Generator],
                     n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ascending indices of the frames whose upper-bound key can reach ``floor``,
    with their uniforms, drawing every frame's uniform but taking no logarithm.

    ``logit_hi_b - log(-log(1 - U)) >= floor`` is ``U <= 1 - exp(-exp(logit_hi_b - floor))``,
    one threshold per bucket; thresholds are widened by 1e-4 nats and rounded
    up to float32, so float32 rounding in the logs can only add frames.
    """
    if floor == -math.inf:
        limit = np.ones(buckets.logit_hi.size, dtype=np.float32)
    else:
        exact = -np.expm1(-np.exp(np.minimum(buckets.logit_hi - floor + 1e-4, 700.0)))
        limit = exact.astype(np.float32)
        limit = np.where(limit < exact, np.nextafter(limit, np.float32(2)), limit)

    # When few uniforms are below the largest threshold (a moderate or high
    # temperature), one scalar comparison leaves a few percent of the frames,
    # and only those look up their bucket's threshold.
    highest = limit.max()
    prefilter = highest < 0.25

    def chunk(i: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        uniform = np.empty(min(_BLOCK, b - a), dtype=np.float32)
        indices, uniforms = [], []
        for begin in range(a, b, _BLOCK):  # a block at a time, so the uniforms stay in cache
            block = uniform[: min(_BLOCK, b - begin)]
            _fill_uniform_block(block, streams[i])
            in_block = buckets.bucket[begin: begin + block.size]
            if prefilter:
                low_enough = np.flatnonzero(block <= highest)
                reaching = low_enough[block[low_enough] <= np.take(limit, in_block[low_enough], mode="clip")]
            else:
                reaching = np.flatnonzero(block <= np.take(limit, in_block, mode="clip"))
            indices.append(reaching + begin)
            uniforms.append(block[reaching])
        return np.concatenate(indices), np.concatenate(uniforms)

    parts = _in_parallel(chunk, n)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def rank_gumbel_top_k(scores: np.ndarray, prior_value: float, temperature: float, k: int,
                      rng: np.random.Generator, *, n_never_scored: int | None = None) -> np.ndarray:
    """Gumbel-top-k over rank-normalised ``scores`` (NaN = never scored, logit ``prior_value / T``).

    Picks exactly the frames that ``average_ranks -> / (n - 1) / T -> + Gumbel
    -> top k`` picks (equal keys go to the lower index) with the same noise
    (:func:`gumbel_noise` of the same generator), but without sorting all N
    scores and without taking the noise's logarithms for all N: buckets bound
    each frame's rank (see :func:`_rank_buckets`); a key floor that at least
    ``k`` lower bounds reach (:func:`_key_floor`) turns into one uniform
    threshold per bucket, so only the few frames whose upper bound can reach
    it get keys (:func:`_frames_reaching`); of those, frames whose upper bound
    is below the k-th largest lower bound are out, frames that at most ``k``
    upper bounds reach are in, and exact ranks are computed only for the few
    in between. ``n_never_scored`` (the number of NaN scores), when the caller
    knows it, saves a pass over the scores. Returns ascending indices.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}] (the number of frames), got {k!r}")
    temperature = validate_temperature(temperature)
    if k == n:
        return np.arange(n, dtype=np.int64)
    if n_never_scored is None:
        # min() propagates NaN: one pass tells whether any frame is never scored.
        n_never_scored = 0 if not math.isnan(float(scores.min())) else int(np.count_nonzero(np.isnan(scores)))
    n_scored = n - n_never_scored
    prior_logit = prior_value / temperature
    buckets = None
    if n_scored >= _BUCKETED_RANKS_FROM and not math.isinf(temperature):
        alpha = _rank_logit_scale(n_scored, temperature)
        buckets = _rank_buckets(scores, n_scored, alpha, prior_logit)
    if buckets is None:
        log_e = _log_exponentials(n, rng)
        if math.isinf(temperature):
            return _top_k_by_key(np.negative(log_e), k)
        scored = slice(None) if n_never_scored == 0 else ~np.isnan(scores)
        values = scores[scored]
        logits = np.full(n, prior_logit)
        if n_scored <= 1 or values.min() == values.max():
            logits[scored] = 0.5 / temperature  # one distinct score normalises to 0.5
        else:
            logits[scored] = average_ranks(values) * _rank_logit_scale(n_scored, temperature)
        return _top_k_by_key(logits - log_e, k)

    streams = _uniform_streams(n, rng)
    states = [stream.bit_generator.state for stream in streams]
    floor = _key_floor(buckets, n_never_scored, k)
    while True:
        maybe, log_e = _frames_reaching(buckets, floor, streams, n)
        _uniforms_to_log_exponentials(log_e)
        in_bucket = buckets.bucket[maybe]
        low = np.take(buckets.logit_lo, in_bucket, mode="clip") - log_e
        if floor == -math.inf or int(np.count_nonzero(low >= floor)) >= k:
            break
        # Fewer than k lower bounds reached the floor (probability < 1e-9): draw
        # the same uniforms again and keep every frame.
        for stream, state in zip(streams, states):
            stream.bit_generator.state = state
        floor = -math.inf
    # Every frame outside ``maybe`` has an upper bound below the floor, hence
    # below the k-th largest lower bound (``threshold >= floor``): it is out.
    threshold = float(np.partition(low, low.size - k)[low.size - k])
    upper = np.take(buckets.logit_hi, in_bucket, mode="clip") - log_e
    keep = upper >= threshold
    maybe, low, upper, log_e = maybe[keep], low[keep], upper[keep], log_e[keep]
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
        frames = open_[needs_rank]
        exact[needs_rank] = _exact_ranks(scores, buckets, maybe[frames]) * alpha - log_e[frames]
    slots = k - int(np.count_nonzero(sure))
    chosen = open_[np.lexsort((maybe[open_], -exact))[:slots]]
    return np.sort(np.concatenate([maybe[sure], maybe[chosen]])).astype(np.int64)
