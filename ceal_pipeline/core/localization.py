"""Localization entropy: how much the MC-Dropout samples of a box disagree.

For each detected object the head's dropout produces ``T`` box samples
``x, y, z, l, w, h, yaw``. CEAL's detection acquisition value is the Gaussian
differential entropy of these samples, aggregated per frame. Yaw is an angle,
so it is embedded as ``(sin yaw, cos yaw)``: samples at ``+pi - e`` and
``-pi + e`` are then close, as they should be, instead of ``2 pi`` apart. Each
object is thus an 8-D sample ``x, y, z, l, w, h, sin, cos``.

The entropy of ``N(mu, Sigma)`` in ``D`` dimensions is
``0.5 * log det(2 pi e Sigma) = 0.5 * (D log(2 pi e) + log det Sigma)`` nats.
With ``T <= D`` samples, identical samples, or the sin/cos pair (which lies on
a circle, so its covariance is nearly rank one) the sample covariance is
singular and the entropy is ``-inf``; adding ``covariance_floor * I`` keeps it
finite and sets the lowest possible score, that of a perfectly certain box:
``0.5 * D * log(2 pi e * floor)``.
"""

from __future__ import annotations

import numpy as np

from ceal_pipeline.core.acquisition import predictive_entropy
from ceal_pipeline.core.boxes import Boxes

#: Box samples are x, y, z, l, w, h, yaw (the frame record's convention).
BOX_DIM = 7
#: After embedding yaw as (sin, cos).
EMBEDDED_DIM = 8
AGGREGATIONS = ("mean", "max", "sum")


def embed_boxes(box_samples: np.ndarray) -> np.ndarray:
    """Map ``(..., 7)`` boxes ``x,y,z,l,w,h,yaw`` to ``(..., 8)`` ``x,y,z,l,w,h,sin(yaw),cos(yaw)``."""
    box_samples = np.asarray(box_samples, dtype=np.float64)
    yaw = box_samples[..., 6:7]
    return np.concatenate([box_samples[..., :6], np.sin(yaw), np.cos(yaw)], axis=-1)


def localization_entropy(box_samples: np.ndarray, covariance_floor: float = 1e-4) -> np.ndarray:
    """Localization entropy in nats of each object's MC box samples.

    Args:
        box_samples: ``(T, K, 7)``: ``T`` MC-Dropout samples of ``K`` boxes
            ``x, y, z, l, w, h`` in metres and ``yaw`` in radians. Sample ``t`` of
            object ``k`` must come from the same stochastic pass for every ``k``
            (it is enough that it is the same object across samples).
        covariance_floor: added to the diagonal of each 8x8 sample covariance
            (m^2 for centre and size, unitless for sin/cos), so that ``T = 1``
            or identical samples give the finite minimum
            ``0.5 * 8 * log(2 pi e * covariance_floor)`` instead of ``-inf``.

    Returns:
        ``(K,)`` float64, the Gaussian differential entropy of the sample
        covariance (unbiased, ``T - 1`` in the denominator; zero for ``T = 1``)
        plus the floor.
    """
    box_samples = np.asarray(box_samples, dtype=np.float64)
    if box_samples.ndim != 3 or box_samples.shape[2] != BOX_DIM:
        raise ValueError(
            f"box_samples must be (T, K, 7) = (MC samples, objects, x y z l w h yaw), got shape {box_samples.shape}"
        )
    if box_samples.shape[0] < 1:
        raise ValueError("box_samples has T=0 MC samples; run at least one forward pass")
    if not np.isfinite(covariance_floor) or covariance_floor <= 0:
        raise ValueError(f"covariance_floor must be a positive finite number (m^2), got {covariance_floor!r}")
    if not np.isfinite(box_samples).all():
        sample, obj, col = (int(i) for i in np.argwhere(~np.isfinite(box_samples))[0])
        raise ValueError(
            f"box_samples[{sample}, {obj}, {col}] is {box_samples[sample, obj, col]!r}; "
            "the detector head produced a non-finite box (check for NaN weights or inputs)"
        )
    t, k, _ = box_samples.shape
    features = embed_boxes(box_samples)  # (T, K, 8)
    centred = features - features.mean(axis=0, keepdims=True)
    if t < 2:
        return np.full(k, minimum_localization_entropy(covariance_floor))
    # logdet(Sigma + floor I) from Sigma's eigenvalues: a sample covariance is positive
    # semi-definite, so a negative eigenvalue is rounding (T < 8 passes leave 8 - T + 1 zero
    # directions, and a wild box's metres-squared swamp the floor); it is clipped to 0.
    covariances = np.einsum("tki,tkj->kij", centred, centred) / (t - 1)
    eigenvalues = np.clip(np.linalg.eigvalsh(covariances), 0.0, None)
    return 0.5 * (EMBEDDED_DIM * np.log(2.0 * np.pi * np.e) + np.log(eigenvalues + covariance_floor).sum(axis=1))


def box_mean_and_std(box_samples: np.ndarray) -> tuple[Boxes, np.ndarray]:
    """MC mean and standard deviation of ``(T, K, 7)`` box samples: the ``K`` mean
    :class:`~ceal_pipeline.core.boxes.Boxes` and a ``(K, 7)`` array of spreads.

    ``x, y, z, l, w, h``: the arithmetic mean and the standard deviation over
    the ``T`` samples (``ddof = 0``), metres. ``yaw``: the circular mean and the
    circular standard deviation ``sqrt(-2 ln R)`` (``R`` the mean resultant
    length), radians, so that samples at ``+pi - e`` and ``-pi + e`` have a mean
    near ``pi`` and a spread near ``e``, not ``0`` and ``pi``. For small spreads
    the circular std equals the linear one to first order.
    """
    box_samples = np.asarray(box_samples, dtype=np.float64)
    if box_samples.ndim != 3 or box_samples.shape[2] != BOX_DIM or box_samples.shape[0] < 1:
        raise ValueError(f"box_samples must be (T >= 1, K, 7), got shape {box_samples.shape}")
    mean = box_samples.mean(axis=0)
    std = box_samples.std(axis=0)
    sin, cos = np.sin(box_samples[..., 6]).mean(axis=0), np.cos(box_samples[..., 6]).mean(axis=0)
    mean[:, 6] = np.arctan2(sin, cos)
    resultant = np.clip(np.hypot(sin, cos), np.finfo(np.float64).tiny, 1.0)
    std[:, 6] = np.sqrt(-2.0 * np.log(resultant))
    return Boxes(mean), std


def minimum_localization_entropy(covariance_floor: float = 1e-4) -> float:
    """The entropy of a box whose MC samples all agree: the floor's own entropy, in nats."""
    return 0.5 * EMBEDDED_DIM * float(np.log(2.0 * np.pi * np.e * covariance_floor))


def localization_information(box_samples: np.ndarray, covariance_floor: float = 1e-4) -> np.ndarray:
    """Localization entropy above its floor, ``(K,)`` nats, ``>= 0``.

    ``localization_entropy - minimum_localization_entropy`` equals
    ``0.5 * logdet(I + Sigma / floor)``: the mutual information between a box
    drawn from the MC samples' Gaussian and the same box observed with
    independent ``N(0, floor * I)`` noise. It is thus a discrete-like quantity
    of information (0 for a perfectly certain box, independent of the units'
    offset that makes differential entropies negative) and can be added to a
    discrete entropy such as the heatmap's. Clipped at 0 against rounding.
    """
    entropy = localization_entropy(box_samples, covariance_floor=covariance_floor)
    return np.maximum(entropy - minimum_localization_entropy(covariance_floor), 0.0)


def aggregate_per_frame(
    object_scores: np.ndarray,
    frame_index: np.ndarray,
    n_frames: int,
    how: str = "mean",
    empty: float = 0.0,
) -> np.ndarray:
    """Reduce per-object scores to one acquisition value per frame.

    Args:
        object_scores: ``(K,)`` per-object values (e.g. localization entropy, nats).
        frame_index: ``(K,)`` integer index in ``[0, n_frames)`` of each object's frame.
        n_frames: number of frames, including frames with no objects.
        how: ``"mean"``, ``"max"`` or ``"sum"``. ``sum`` favours crowded frames,
            ``max`` frames with one very uncertain object, ``mean`` neither.
        empty: the value of a frame with no detected objects. The default 0.0
            is *not* neutral for entropies (which can be negative); pass e.g.
            :func:`minimum_localization_entropy` to rank empty frames as certain.

    Returns:
        ``(n_frames,)`` float64.
    """
    object_scores = np.asarray(object_scores, dtype=np.float64)
    frame_index = np.asarray(frame_index)
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation how={how!r}; choose one of {AGGREGATIONS}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative int, got {n_frames!r}")
    if object_scores.ndim != 1 or frame_index.shape != object_scores.shape:
        raise ValueError(
            f"object_scores and frame_index must both be (K,); got {object_scores.shape} and {frame_index.shape}"
        )
    if object_scores.size and not np.issubdtype(frame_index.dtype, np.integer):
        raise ValueError(f"frame_index must hold integers, got dtype {frame_index.dtype}")
    if object_scores.size and (frame_index.min() < 0 or frame_index.max() >= n_frames):
        bad = int(np.flatnonzero((frame_index < 0) | (frame_index >= n_frames))[0])
        raise ValueError(
            f"object {bad} has frame_index {int(frame_index[bad])}, outside [0, {n_frames}); "
            "pass n_frames = number of frames in the batch"
        )
    if np.isnan(object_scores).any():
        bad = int(np.flatnonzero(np.isnan(object_scores))[0])
        raise ValueError(f"object {bad} (frame_index {int(frame_index[bad])}) has a NaN score")
    counts = np.bincount(frame_index, minlength=n_frames)
    out = np.full(n_frames, float(empty))
    has_objects = counts > 0
    if how == "max":
        maxima = np.full(n_frames, -np.inf)
        np.maximum.at(maxima, frame_index, object_scores)
        out[has_objects] = maxima[has_objects]
        return out
    sums = np.bincount(frame_index, weights=object_scores, minlength=n_frames)
    if how == "sum":
        out[has_objects] = sums[has_objects]
    else:
        out[has_objects] = sums[has_objects] / counts[has_objects]
    return out


def localization_and_class_entropy(
    box_samples: np.ndarray,
    class_probs: np.ndarray,
    covariance_floor: float = 1e-4,
    class_weight: float = 1.0,
) -> np.ndarray:
    """Per-object localization entropy plus ``class_weight`` times the class predictive entropy, in nats.

    ``class_probs`` is ``(T, K, C)``, the MC samples of each object's class
    distribution (from the same passes as ``box_samples``). Both terms are
    entropies in nats, so they add without rescaling; the weight lets a config
    trade the two off.
    """
    loc = localization_entropy(box_samples, covariance_floor=covariance_floor)
    class_probs = np.asarray(class_probs, dtype=np.float64)
    if class_probs.ndim != 3 or class_probs.shape[1] != loc.shape[0]:
        raise ValueError(
            f"class_probs must be (T, K, C) with K={loc.shape[0]} objects like box_samples, got {class_probs.shape}"
        )
    return loc + class_weight * predictive_entropy(class_probs)
