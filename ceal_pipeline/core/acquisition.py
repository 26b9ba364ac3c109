"""Classification acquisition functions over MC-Dropout samples.

Every function takes ``probs`` shaped ``(T, N, C)``: ``T`` stochastic forward
passes (MC-Dropout samples), ``N`` items (images, objects or frames), ``C``
classes, each ``probs[t, n]`` a probability vector. Each returns ``(N,)`` where
*larger means more uncertain*, so the candidate pool and the top-K selection can
treat every function alike. Entropies are in nats.

They are pure functions of the array (no model, no state), in the spirit of
baal's heuristics, so the detector, the MNIST/CIFAR validation and the tests all
call the same code.
"""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar

import numpy as np

Entry = TypeVar("Entry")

#: Slack for "is this a probability vector": softmax outputs in float16/float32
#: sum to 1 only up to rounding.
PROBABILITY_TOLERANCE = 1e-3


def neg_xlogx(p: np.ndarray) -> np.ndarray:
    """``-p * log(p)`` with the limit value 0 at ``p == 0``.

    ``0 * log(0)`` is ``0 * -inf = nan`` in IEEE arithmetic; the entropy's
    limit is 0, so zeros are routed around the logarithm instead of patched
    afterwards (which would still raise a floating-point warning).
    """
    positive = p > 0
    safe = np.where(positive, p, 1.0)
    return np.where(positive, -p * np.log(safe), 0.0)


def validate_probabilities(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    """Return ``probs`` as a float64 ``(T, N, C)`` array or raise a clear error.

    Checks the rank, ``T >= 1`` and ``C >= 2``, finiteness, the range ``[0, 1]``
    and that each vector sums to 1 within :data:`PROBABILITY_TOLERANCE`; the
    error names the first offending ``(sample, item)`` so it can be traced back
    to a frame.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(
            f"{name} must be (T, N, C) = (MC samples, items, classes), got shape {probs.shape}; "
            "add a leading axis of size 1 for a single deterministic pass"
        )
    t, _, c = probs.shape
    if t < 1:
        raise ValueError(f"{name} has T=0 MC samples; run at least one forward pass")
    if c < 2:
        raise ValueError(f"{name} has C={c} classes; acquisition needs at least 2 (use [p, 1-p] for a binary output)")
    if probs.size == 0:
        return probs
    bad = ~np.isfinite(probs) | (probs < 0.0) | (probs > 1.0 + PROBABILITY_TOLERANCE)
    if bad.any():
        sample, item, cls = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}[{sample}, {item}, {cls}] = {probs[sample, item, cls]!r} is not a probability; "
            "pass softmax outputs, not logits"
        )
    sums = probs.sum(axis=2)
    off = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        sample, item = (int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            f"{name}[{sample}, {item}] sums to {sums[sample, item]:.6f}, not 1; "
            "apply softmax over the class axis (the last one) before scoring"
        )
    return probs


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of the MC-averaged prediction, ``H[mean_t p_t]``, in nats ``(N,)``.

    Ranges from 0 (all samples agree on a one-hot vector) to ``log C``.
    """
    probs = validate_probabilities(probs)
    return neg_xlogx(probs.mean(axis=0)).sum(axis=1)


def expected_entropy(probs: np.ndarray) -> np.ndarray:
    """Mean entropy of the individual samples, ``mean_t H[p_t]``, in nats ``(N,)``.

    The aleatoric part of the predictive entropy; BALD subtracts it.
    """
    probs = validate_probabilities(probs)
    return neg_xlogx(probs).sum(axis=2).mean(axis=0)


def bald(probs: np.ndarray) -> np.ndarray:
    """BALD (Houlsby et al. 2011): mutual information between the prediction
    and the model parameters, ``H[mean_t p_t] - mean_t H[p_t]``, in nats ``(N,)``.

    Zero when all MC samples agree (however uncertain each is); large when the
    samples are individually confident but disagree with each other. Clipped at
    0 because the two terms can differ by -1e-16 from rounding when they are equal.
    """
    probs = validate_probabilities(probs)
    return np.maximum(predictive_entropy(probs) - expected_entropy(probs), 0.0)


def variation_ratios(probs: np.ndarray) -> np.ndarray:
    """Variation ratio (Freeman 1965, as used by Gal et al. 2017), ``(N,)`` in ``[0, 1 - 1/C]``.

    ``1 - f_mode / T`` where ``f_mode`` counts the MC samples whose arg-max is the
    most frequent arg-max: the fraction of stochastic passes that disagree with
    the majority vote. Ties in a sample's arg-max go to the lower class index
    (``numpy.argmax``), so the value is deterministic.
    """
    probs = validate_probabilities(probs)
    t, n, c = probs.shape
    votes = probs.argmax(axis=2)  # (T, N)
    # Count votes per (item, class) with one bincount over flattened indices.
    flat = (np.arange(n)[None, :] * c + votes).ravel()
    counts = np.bincount(flat, minlength=n * c).reshape(n, c)
    return 1.0 - counts.max(axis=1) / t


def margin(probs: np.ndarray) -> np.ndarray:
    """Margin uncertainty ``1 - (p_(1) - p_(2))`` of the MC-averaged prediction, ``(N,)`` in ``[0, 1]``.

    ``p_(1)`` and ``p_(2)`` are the largest and second-largest mean class
    probabilities; a small margin between the two best classes means high
    uncertainty, so it is subtracted from 1 to keep "larger = more uncertain".
    """
    probs = validate_probabilities(probs)
    mean = probs.mean(axis=0)
    top_two = np.partition(mean, mean.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """Least confidence ``1 - max_c mean_t p_t[c]``, ``(N,)`` in ``[0, 1 - 1/C]``."""
    probs = validate_probabilities(probs)
    return 1.0 - probs.mean(axis=0).max(axis=1)


AcquisitionFunction = Callable[[np.ndarray], np.ndarray]

#: Name -> function, the names used in configs and in the ``acquisition_fn``
#: column of the acquisition history.
ACQUISITION_FUNCTIONS: dict[str, AcquisitionFunction] = {
    "predictive_entropy": predictive_entropy,
    "variation_ratios": variation_ratios,
    "bald": bald,
    "margin": margin,
    "least_confidence": least_confidence,
}


def look_up_by_name(registry: Mapping[str, Entry], name: str, kind: str) -> Entry:
    """``registry[name]``, or a ``ValueError`` naming the unknown ``kind`` and the valid names."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(registry)}") from None


def get_acquisition_function(name: str) -> AcquisitionFunction:
    """Look up an acquisition function by its config name, with a helpful error."""
    return look_up_by_name(ACQUISITION_FUNCTIONS, name, "acquisition function")
