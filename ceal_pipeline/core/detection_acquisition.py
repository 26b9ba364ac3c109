"""Detection acquisition functions: one value per frame from the MC-Dropout passes of a batch.

The detector layer turns one batch of MC-Dropout passes into
:class:`DetectionMCOutputs` (box samples at the detected peaks and the head's
sigmoid heatmap, no extra backbone pass) and calls a function of
:data:`DETECTION_ACQUISITION_FUNCTIONS` on it. Each returns ``(n_frames,)``
where larger means more worth labeling. Every frame's value depends on that
frame's outputs alone, so batches, shards and rounds can be scored apart and
compared. The one exception is a *rank combination* (below), whose per-frame
*terms* have that property and whose value is a rank over a set of frames.

* ``localization_entropy``: the mean/max/sum over a frame's objects of
  :func:`~ceal_pipeline.core.localization.localization_entropy` (nats); a frame
  without detections gets ``empty`` (default the floor, the entropy of a
  perfectly certain box), so it ranks last. CEAL's default, unchanged.
* ``localization_and_class_entropy``: per object, localization entropy plus
  ``class_weight`` times the entropy of the heatmap's class scores at its peak
  (normalised over classes); empty frames as above.
* ``heatmap_entropy``: :func:`~ceal_pipeline.core.heatmap_entropy.heatmap_entropy`,
  the mean entropy of the frame's ``heatmap_top_k`` most uncertain BEV cells
  (nats per cell); defined with or without detections.
* ``localization_and_heatmap_entropy``: the aggregated
  :func:`~ceal_pipeline.core.localization.localization_information` (the
  localization entropy above its floor, 0 for a frame without detections) plus
  ``heatmap_weight`` times the heatmap entropy. Both terms are nats of
  information about discrete-resolution quantities, so ``heatmap_weight = 1``
  weighs one nat of box uncertainty like one nat of "is there an object here".
  A frame without detections scores its heatmap entropy, never a constant.
  The scales differ in practice: on the untrained tiny detector an object's
  localization information is 7-10 nats and the heatmap entropy 1.35-1.4 nats
  per cell (at most ``C log 2``), so with weight 1 localization orders the frames
  with detections, the heatmap orders those without and lifts them above frames
  of certain boxes; a larger ``heatmap_weight`` lets missed objects compete.
* ``localization_and_heatmap_ranks``: the same two terms (aggregated
  localization information, heatmap entropy), each replaced by its average
  rank among the frames scored together scaled to [0, 1], then weighted (1 and
  ``heatmap_weight``) and added (:func:`rank_normalised_combination`). Ranks
  make the terms weigh what their weights say whatever their units and spreads.
  The value of a frame depends on the set it is ranked in, so it is a *rank
  combination* (:attr:`DetectionAcquisitionFunction.combines_ranks`): scorers
  keep its per-frame terms (:meth:`DetectionAcquisitionFunction.frame_terms`),
  the score shard stores them, and the merge (``core.history.ingest``) and the
  benchmark recombine them over all of a round's candidates. A value is thus a
  position among one round's candidates, in ``[0, 1 + heatmap_weight]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ceal_pipeline.core.acquisition import look_up_by_name
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline.core.heatmap_entropy import HEATMAP_TOP_K, heatmap_entropy, validate_heatmap_probabilities
from ceal_pipeline.core.localization import (
    AGGREGATIONS,
    aggregate_per_frame,
    localization_and_class_entropy,
    localization_entropy,
    localization_information,
    minimum_localization_entropy,
)

#: The registry's names, for typed config fields (a typo fails in the Launchpad, not an hour into a run).
DetectionAcquisitionName = Literal[
    "localization_entropy",
    "localization_and_class_entropy",
    "heatmap_entropy",
    "localization_and_heatmap_entropy",
    "localization_and_heatmap_ranks",
]
#: Per-frame reductions of object values (see the module docstring).
DETECTION_AGGREGATIONS: tuple[str, ...] = (*AGGREGATIONS, "top_k_sum", "confidence_sum")


@dataclass(frozen=True)
class DetectionMCOutputs:
    """The arrays one batch of MC-Dropout passes produces.

    Attributes:
        box_samples: ``(T, K, 7)`` MC samples of the ``K`` detected boxes,
            ``x y z l w h`` in metres and ``yaw`` in radians.
        frame_index: ``(K,)`` int, the frame of each box in ``[0, n_frames)``.
        peak_cell: ``(K,)`` int, each box's heatmap peak as a flat ``y * W + x`` cell.
        heatmap_probs: ``(T_h, n_frames, C, H, W)`` sigmoid heatmap; ``T_h = 1``
            for the head's deterministic heatmap.
    """

    box_samples: np.ndarray
    frame_index: np.ndarray
    peak_cell: np.ndarray
    heatmap_probs: np.ndarray

    def __post_init__(self) -> None:
        heatmap_probs = validate_heatmap_probabilities(self.heatmap_probs)
        box_samples = np.asarray(self.box_samples, dtype=np.float64)
        frame_index, peak_cell = np.asarray(self.frame_index), np.asarray(self.peak_cell)
        if box_samples.ndim != 3:
            raise ValueError(f"box_samples must be (T, K, 7), got shape {box_samples.shape}")
        k = box_samples.shape[1]
        _, n_frames, _, height, width = heatmap_probs.shape
        for name, index, bound in (("frame_index", frame_index, n_frames), ("peak_cell", peak_cell, height * width)):
            if index.shape != (k,) or (k and not np.issubdtype(index.dtype, np.integer)):
                raise ValueError(
                    f"{name} must be ({k},) integers like box_samples' objects, got {index.shape} {index.dtype}"
                )
            if k and (index.min() < 0 or index.max() >= bound):
                bad = int(np.flatnonzero((index < 0) | (index >= bound))[0])
                raise ValueError(f"object {bad} has {name} {int(index[bad])}, outside [0, {bound})")
        object.__setattr__(self, "heatmap_probs", heatmap_probs)
        object.__setattr__(self, "box_samples", box_samples)
        object.__setattr__(self, "frame_index", frame_index.astype(np.int64))
        object.__setattr__(self, "peak_cell", peak_cell.astype(np.int64))

    @property
    def n_frames(self) -> int:
        return int(self.heatmap_probs.shape[1])

    @property
    def n_detections(self) -> np.ndarray:
        """``(n_frames,)`` number of detected boxes per frame."""
        return np.bincount(self.frame_index, minlength=self.n_frames)

    def peak_class_probs(self) -> np.ndarray:
        """``(T_h, K, C)`` each box's class distribution: the heatmap's class scores at its
        peak, normalised to sum to 1 (uniform where every score is 0)."""
        t, b, c, height, width = self.heatmap_probs.shape
        per_cell = self.heatmap_probs.reshape(t, b, c, height * width).transpose(0, 1, 3, 2)
        scores = per_cell[:, self.frame_index, self.peak_cell]  # (T_h, K, C)
        total = scores.sum(axis=-1, keepdims=True)
        return np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / c)

    def peak_confidence(self) -> np.ndarray:
        """``(K,)`` each box's confidence: its peak's largest class score, mean over heatmap passes."""
        t, b, c, height, width = self.heatmap_probs.shape
        per_cell = self.heatmap_probs.reshape(t, b, c, height * width).transpose(0, 1, 3, 2)
        return per_cell[:, self.frame_index, self.peak_cell].max(axis=-1).mean(axis=0)  # (T_h, K, C) -> (K,)


@dataclass(frozen=True)
class DetectionAcquisitionSettings:
    """The knobs of the detection acquisition functions; each function reads the ones it uses.

    Attributes:
        aggregate: per-frame reduction of per-object values, one of :data:`DETECTION_AGGREGATIONS`.
        top_objects: objects summed per frame by ``top_k_sum``.
        covariance_floor: m^2, see :func:`~ceal_pipeline.core.localization.localization_entropy`.
        empty: value of a frame without detections for the localization-only
            functions; ``None`` = the floor (a perfectly certain box). Rejected by
            the heatmap functions, which score such frames from the heatmap.
        heatmap_top_k: cells per frame averaged by the heatmap entropy.
        heatmap_weight: multiplies the heatmap entropy in ``localization_and_heatmap_entropy``.
        class_weight: multiplies the class entropy in ``localization_and_class_entropy``.
    """

    aggregate: str = "mean"
    covariance_floor: float = 1e-4
    empty: float | None = None
    heatmap_top_k: int = HEATMAP_TOP_K
    heatmap_weight: float = 1.0
    class_weight: float = 1.0
    top_objects: int = 3

    def __post_init__(self) -> None:
        if self.aggregate not in DETECTION_AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; choose one of {DETECTION_AGGREGATIONS}")
        if isinstance(self.top_objects, bool) or not isinstance(self.top_objects, (int, np.integer)) \
                or self.top_objects < 1:
            raise ValueError(f"top_objects must be an int >= 1, got {self.top_objects!r}")
        for name in ("heatmap_weight", "class_weight"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")

    def empty_value(self) -> float:
        """The score of a frame without detections under the localization-only functions, nats."""
        return minimum_localization_entropy(self.covariance_floor) if self.empty is None else float(self.empty)


def top_k_sum(values: np.ndarray, frame_index: np.ndarray, n_frames: int, k: int) -> np.ndarray:
    """``(n_frames,)`` the sum of each frame's ``k`` largest ``values`` (0 for a frame without any)."""
    values = np.asarray(values, dtype=np.float64)
    frame_index = np.asarray(frame_index, dtype=np.int64)
    if values.size == 0:
        return np.zeros(n_frames)
    order = np.lexsort((-values, frame_index))  # by frame, largest first
    ordered = frame_index[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    rank = np.arange(ordered.size) - np.repeat(starts, np.diff(np.r_[starts, ordered.size]))
    kept = order[rank < k]
    return np.bincount(frame_index[kept], weights=values[kept], minlength=n_frames)


def aggregate_objects(values: np.ndarray, outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings,
                      empty: float) -> np.ndarray:
    """Per-frame ``settings.aggregate`` of per-object ``values``; ``empty`` for a frame without objects.

    ``top_k_sum`` and ``confidence_sum`` add up each object's excess over
    ``empty`` (values below it count 0), so they never rank a frame below an
    empty one and count a frame's objects rather than average them away.
    """
    how = settings.aggregate
    if how in AGGREGATIONS:
        return aggregate_per_frame(values, outputs.frame_index, outputs.n_frames, how=how, empty=empty)
    excess = np.clip(np.asarray(values, dtype=np.float64) - empty, 0.0, None)
    if how == "top_k_sum":
        return empty + top_k_sum(excess, outputs.frame_index, outputs.n_frames, settings.top_objects)
    weighted = excess * outputs.peak_confidence()
    return empty + np.bincount(outputs.frame_index, weights=weighted, minlength=outputs.n_frames)


def frame_localization_entropy(outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings) -> np.ndarray:
    """Aggregated localization entropy per frame, nats; ``settings.empty_value()`` without detections."""
    entropy = localization_entropy(outputs.box_samples, covariance_floor=settings.covariance_floor)
    return aggregate_objects(entropy, outputs, settings, settings.empty_value())


def frame_localization_and_class_entropy(
    outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings
) -> np.ndarray:
    """Aggregated localization plus ``class_weight`` x peak class entropy per frame, nats."""
    per_object = localization_and_class_entropy(
        outputs.box_samples,
        outputs.peak_class_probs(),
        covariance_floor=settings.covariance_floor,
        class_weight=settings.class_weight,
    )
    return aggregate_objects(per_object, outputs, settings, settings.empty_value())


def frame_heatmap_entropy(outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings) -> np.ndarray:
    """Mean entropy of each frame's ``heatmap_top_k`` most uncertain cells, nats per cell."""
    return heatmap_entropy(outputs.heatmap_probs, top_k=settings.heatmap_top_k)


def localization_and_heatmap_terms(
    outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings
) -> dict[str, np.ndarray]:
    """Per frame: ``localization``, the aggregated localization information (nats; 0 without
    detections), and ``heatmap``, the heatmap entropy (nats per cell)."""
    information = localization_information(outputs.box_samples, covariance_floor=settings.covariance_floor)
    return {"localization": aggregate_objects(information, outputs, settings, 0.0),
            "heatmap": frame_heatmap_entropy(outputs, settings)}


def localization_and_heatmap_weights(settings: DetectionAcquisitionSettings) -> dict[str, float]:
    """The weights of :func:`localization_and_heatmap_terms`: 1 and ``heatmap_weight``."""
    return {"localization": 1.0, "heatmap": float(settings.heatmap_weight)}


def frame_localization_and_heatmap_entropy(
    outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings
) -> np.ndarray:
    """Aggregated localization information plus ``heatmap_weight`` x heatmap entropy per frame, nats.

    A frame without detections has no localization information (0), so it
    scores ``heatmap_weight * heatmap_entropy``.
    """
    terms, weights = localization_and_heatmap_terms(outputs, settings), localization_and_heatmap_weights(settings)
    return terms["localization"] + weights["heatmap"] * terms["heatmap"]


@dataclass(frozen=True)
class DetectionAcquisitionFunction:
    """A named detection acquisition function of the registry.

    ``empty_frames_from_heatmap`` says whether a frame without detections gets a
    value from the heatmap (``True``) or the constant ``settings.empty_value()``.
    A *rank combination* has ``terms`` (per-frame values, each frame's own) and
    ``weights``; its value is :func:`rank_normalised_combination` of the terms
    over the frames combined together (:meth:`combine`). For any other function
    the terms are one, ``value``, and combining returns it unchanged.
    """

    name: str
    score: Callable[[DetectionMCOutputs, DetectionAcquisitionSettings], np.ndarray] | None
    empty_frames_from_heatmap: bool
    terms: Callable[[DetectionMCOutputs, DetectionAcquisitionSettings], dict[str, np.ndarray]] | None = None
    weights: Callable[[DetectionAcquisitionSettings], dict[str, float]] | None = None

    @property
    def combines_ranks(self) -> bool:
        """True when a frame's value is a rank among the frames combined together."""
        return self.terms is not None

    def __call__(
        self, outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings = DetectionAcquisitionSettings()
    ) -> np.ndarray:
        """``(n_frames,)`` acquisition values of the frames of ``outputs`` (for a rank
        combination: ranked among these frames only)."""
        return self.combine(self.frame_terms(outputs, settings), settings)

    def frame_terms(
        self, outputs: DetectionMCOutputs, settings: DetectionAcquisitionSettings = DetectionAcquisitionSettings()
    ) -> dict[str, np.ndarray]:
        """Name -> ``(n_frames,)`` per-frame terms; each frame's depend on its outputs alone,
        so terms of batches scored apart can be concatenated."""
        self.check_settings(settings)
        if self.terms is not None:
            return self.terms(outputs, settings)
        return {"value": self.score(outputs, settings)}

    def term_weights(self, settings: DetectionAcquisitionSettings) -> dict[str, float]:
        """The weights :meth:`combine` gives the terms (``{}`` when not a rank combination)."""
        return {} if self.weights is None else self.weights(settings)

    def combine(self, terms: dict[str, np.ndarray], settings: DetectionAcquisitionSettings) -> np.ndarray:
        """The values of the frames whose :meth:`frame_terms` are ``terms`` (concatenated
        over batches), combined over exactly these frames."""
        if not self.combines_ranks:
            return np.asarray(terms["value"], dtype=np.float64)
        return rank_normalised_combination(terms, self.term_weights(settings))

    def check_settings(self, settings: DetectionAcquisitionSettings) -> None:
        """Raise if ``settings`` holds a value this function would silently ignore."""
        if self.empty_frames_from_heatmap and settings.empty is not None:
            raise ValueError(
                f"empty={settings.empty!r} is not used by {self.name!r}, which scores frames without "
                "detections from the heatmap; leave empty=None"
            )


#: Name -> function, the names used in configs and in the ``acquisition_fn``
#: column of the acquisition history.
DETECTION_ACQUISITION_FUNCTIONS: dict[str, DetectionAcquisitionFunction] = {
    fn.name: fn
    for fn in (
        DetectionAcquisitionFunction("localization_entropy", frame_localization_entropy, False),
        DetectionAcquisitionFunction("localization_and_class_entropy", frame_localization_and_class_entropy, False),
        DetectionAcquisitionFunction("heatmap_entropy", frame_heatmap_entropy, True),
        DetectionAcquisitionFunction(
            "localization_and_heatmap_entropy", frame_localization_and_heatmap_entropy, True
        ),
        DetectionAcquisitionFunction(
            "localization_and_heatmap_ranks", None, True,
            terms=localization_and_heatmap_terms, weights=localization_and_heatmap_weights,
        ),
    )
}


def get_detection_acquisition_function(name: str) -> DetectionAcquisitionFunction:
    """Look up a detection acquisition function by its config name, with a helpful error."""
    return look_up_by_name(DETECTION_ACQUISITION_FUNCTIONS, name, "detection acquisition function")
