"""Why a frame was bought: what the detector saw in it and how unsure it was of each object.

A frame's acquisition value is one number in nats, aggregated over its
objects; whoever checks a purchase needs what went into it. The MC-Dropout
passes give, per detected object, the MC-mean box, the MC standard deviation of
each box value and the object's localization entropy
(:func:`~ceal_pipeline.core.localization.localization_entropy`). A
:class:`FrameExplanation` summarises them per frame:

* how many objects the detector found, per class;
* the ``top`` most uncertain objects (highest localization entropy): class,
  MC-mean box, MC standard deviation of centre, size and yaw, heatmap
  confidence and entropy;
* the acquisition function and the aggregate (mean, max or sum over objects)
  that turned per-object values into the frame's score;
* whether the frame had no detection and was scored at the constant
  no-detection value (the floor) rather than from anything the detector saw.

The explanation is written with the score into the score shard
(:mod:`ceal_pipeline.core.history.shards`) and reaches the UI and the vendor
export from there. :meth:`UncertainObject.to_record` is the one flat record
layout both use. Arrays in, records out: no detector, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.boxes import BOX_FIELDS, Boxes
from ceal_pipeline.core.detection_acquisition import DETECTION_AGGREGATIONS
from ceal_pipeline.core.localization import BOX_DIM

#: Most uncertain objects kept per frame.
TOP_OBJECTS = 3


@dataclass(frozen=True)
class FrameObjects:
    """Objects the detector found in one frame, with their MC-Dropout statistics.

    ``boxes`` the ``K`` MC-mean :class:`~ceal_pipeline.core.boxes.Boxes` (yaw is the
    circular mean), ``box_std`` ``(K, 7)`` the MC standard deviation of each
    value (yaw: circular, rad), ``labels`` ``(K,)`` class indices into the
    detector's class names, ``confidences`` ``(K,)`` heatmap scores in [0, 1],
    ``localization_entropy`` ``(K,)`` nats.
    """

    boxes: Boxes
    box_std: np.ndarray
    labels: np.ndarray
    confidences: np.ndarray
    localization_entropy: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.labels)
        if not isinstance(self.boxes, Boxes):
            raise TypeError(f"FrameObjects.boxes must be core.boxes.Boxes, got {type(self.boxes).__name__}; "
                            "wrap the (K, 7) array: Boxes(array)")
        shapes = {"boxes": (k, BOX_DIM), "box_std": (k, BOX_DIM), "confidences": (k,), "localization_entropy": (k,)}
        for name, shape in shapes.items():
            actual = self.boxes.values.shape if name == "boxes" else np.shape(getattr(self, name))
            if actual != shape:
                raise ValueError(
                    f"FrameObjects.{name} must have shape {shape} for {k} objects (one per label), got {actual}"
                )

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class UncertainObject:
    """One detected object and how much the MC-Dropout passes disagreed about its box.

    ``box`` is the MC-mean ``x y z l w h yaw`` (metres, rad), ``box_std`` the MC
    standard deviation of each value, ``confidence`` the heatmap score in
    [0, 1] and ``localization_entropy`` the Gaussian differential entropy of
    its box samples in nats.
    """

    class_name: str
    box: tuple[float, ...]
    box_std: tuple[float, ...]
    confidence: float
    localization_entropy: float

    @property
    def centre_std_m(self) -> float:
        """Root-sum-square MC std of the centre ``x, y, z``, metres."""
        return float(np.sqrt(np.sum(np.square(self.box_std[0:3]))))

    @property
    def size_std_m(self) -> float:
        """Root-sum-square MC std of the size ``l, w, h``, metres."""
        return float(np.sqrt(np.sum(np.square(self.box_std[3:6]))))

    @property
    def yaw_std_rad(self) -> float:
        """Circular MC std of the heading, radians."""
        return float(self.box_std[6])

    def to_record(self) -> dict:
        """A flat record: ``class_name``, ``x .. yaw``, ``std_x .. std_yaw``, ``confidence``,
        ``localization_entropy`` (the layout of the score shard and the export)."""
        record: dict = {"class_name": self.class_name}
        record.update({name: float(v) for name, v in zip(BOX_FIELDS, self.box)})
        record.update({f"std_{name}": float(v) for name, v in zip(BOX_FIELDS, self.box_std)})
        record["confidence"] = float(self.confidence)
        record["localization_entropy"] = float(self.localization_entropy)
        return record

    @classmethod
    def from_record(cls, record: Mapping) -> UncertainObject:
        """Inverse of :meth:`to_record`."""
        try:
            return cls(
                class_name=str(record["class_name"]),
                box=tuple(float(record[name]) for name in BOX_FIELDS),
                box_std=tuple(float(record[f"std_{name}"]) for name in BOX_FIELDS),
                confidence=float(record["confidence"]),
                localization_entropy=float(record["localization_entropy"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an uncertain-object record ({exc!r}): {dict(record)}") from exc


@dataclass(frozen=True)
class FrameExplanation:
    """Why one frame scored what it scored (see the module docstring).

    ``class_counts`` maps each detected class to its number of objects (classes
    without detections are left out), ``most_uncertain`` holds up to
    :data:`TOP_OBJECTS` objects by decreasing localization entropy, and
    ``at_empty_floor`` is true when the frame had no detection and its score
    is the function's constant no-detection value.
    """

    acquisition_fn: str
    aggregate: str
    n_detections: int
    class_counts: Mapping[str, int]
    most_uncertain: tuple[UncertainObject, ...]
    at_empty_floor: bool

    def __post_init__(self) -> None:
        if self.at_empty_floor and self.n_detections:
            raise ValueError(
                f"a frame with {self.n_detections} detections cannot be scored at the no-detection floor"
            )
        if sum(self.class_counts.values()) != self.n_detections:
            raise ValueError(
                f"class counts {dict(self.class_counts)} do not add up to {self.n_detections} detections"
            )

    def to_record(self) -> dict:
        """A JSON-ready record (the export's ``explanations.jsonl`` layout, less the frame id)."""
        return {
            "acquisition_fn": self.acquisition_fn,
            "aggregate": self.aggregate,
            "n_detections": int(self.n_detections),
            "class_counts": {str(k): int(v) for k, v in self.class_counts.items()},
            "most_uncertain": [o.to_record() for o in self.most_uncertain],
            "at_empty_floor": bool(self.at_empty_floor),
        }

    @classmethod
    def from_record(cls, record: Mapping) -> FrameExplanation:
        """Inverse of :meth:`to_record`; ``class_counts`` may also be a list of ``(class, count)``
        pairs (how Parquet maps read back)."""
        counts = record["class_counts"]
        pairs = counts.items() if isinstance(counts, Mapping) else counts
        return cls(
            acquisition_fn=str(record["acquisition_fn"]),
            aggregate=str(record["aggregate"]),
            n_detections=int(record["n_detections"]),
            class_counts={str(k): int(v) for k, v in pairs},
            most_uncertain=tuple(UncertainObject.from_record(o) for o in record["most_uncertain"] or ()),
            at_empty_floor=bool(record["at_empty_floor"]),
        )


def explain_frame(
    objects: FrameObjects,
    class_names: Sequence[str],
    *,
    acquisition_fn: str,
    aggregate: str,
    at_empty_floor: bool,
    top: int = TOP_OBJECTS,
) -> FrameExplanation:
    """Summarise one frame's detected objects into a :class:`FrameExplanation`.

    Args:
        objects: the frame's objects with their MC statistics.
        class_names: the detector's classes; ``objects.labels`` index into them.
        acquisition_fn: the function that scored the frame (a name of
            :data:`~ceal_pipeline.core.detection_acquisition.DETECTION_ACQUISITION_FUNCTIONS`).
        aggregate: the per-frame reduction the score used, one of ``DETECTION_AGGREGATIONS``.
        at_empty_floor: the frame's score is the constant no-detection value
            (only possible without detections).
        top: how many of the most uncertain objects to keep; ties in entropy keep
            detection order, so the result does not depend on the sort algorithm.

    Raises:
        ValueError: an unknown aggregate, a label outside ``class_names``, or the
            floor flag on a frame with detections.
    """
    if aggregate not in DETECTION_AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregate!r}; choose one of {DETECTION_AGGREGATIONS}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
        raise ValueError(f"top must be a non-negative int (objects kept per frame), got {top!r}")
    labels = np.asarray(objects.labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        bad = int(labels[(labels < 0) | (labels >= len(class_names))][0])
        raise ValueError(f"object label {bad} is not an index into the detector's classes {tuple(class_names)}")
    entropy = np.asarray(objects.localization_entropy, dtype=np.float64)
    order = np.argsort(-entropy, kind="stable")[:top]
    counts = np.bincount(labels, minlength=len(class_names))
    return FrameExplanation(
        acquisition_fn=acquisition_fn,
        aggregate=aggregate,
        n_detections=len(labels),
        class_counts={str(class_names[c]): int(counts[c]) for c in range(len(class_names)) if counts[c]},
        most_uncertain=tuple(
            UncertainObject(
                class_name=str(class_names[labels[i]]),
                box=tuple(float(v) for v in objects.boxes.values[i]),
                box_std=tuple(float(v) for v in objects.box_std[i]),
                confidence=float(objects.confidences[i]),
                localization_entropy=float(entropy[i]),
            )
            for i in order
        ),
        at_empty_floor=bool(at_empty_floor),
    )
