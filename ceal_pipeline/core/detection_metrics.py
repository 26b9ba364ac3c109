"""Detection quality: nuScenes-style mAP with BEV centre-distance matching.

Used to show that a model trained on CEAL-selected frames is as good as one
trained on full-pool selections. Instead of IoU, a prediction matches a
ground-truth box of its class when their bird's-eye-view centres (x, y) are
closer than a distance threshold; the thresholds are nuScenes' 0.5, 1, 2 and 4 m.

Per class and threshold (the nuScenes detection benchmark's definition,
Caesar et al. 2020):

1. Predictions of the class from all frames are ranked by score, descending.
2. Greedy matching: each prediction in turn takes the nearest still-unmatched
   ground truth of its class in its frame; a true positive if that distance is
   ``< threshold``, else a false positive.
3. Precision ``TP / (TP + FP)`` and recall ``TP / n_gt`` along the ranking are
   linearly interpolated (no precision envelope) at 101 recall points
   ``0, 0.01, ..., 1``, precision 0 beyond the highest recall reached. Where
   recall repeats (false positives), the first point of each recall level is
   used, so trailing false positives after full recall cost nothing.
4. ``AP = mean(max(precision - min_precision, 0)) / (1 - min_precision)`` over
   the recall points *above* ``min_recall``; defaults 0.1 and 0.1. Operating
   points below 10 % recall or 10 % precision are thus ignored, and a detector
   that is perfect scores exactly 1.
5. The same AP *unclipped* (``min_recall = min_precision = 0``): the mean
   interpolated precision over the recall points above 0. A class the
   detector finds at 8 % recall scores 0 clipped but not unclipped, and one
   found at 12 % precision keeps its full precision rather than 2 % of it, so
   progress on rare classes shows before it crosses the clipping thresholds.

The summary splits the headline class from the rest: ``car_AP`` (the class
``car``, the synthetic and most driving data's dominant class) and
``non_car_mAP`` (mean AP over the other classes with ground truth), clipped
and unclipped, since an mAP over four classes of which three score near 0 is
about a quarter of car AP and hides where points are won.

mAP is the mean over thresholds and classes. A class with no ground truth in
the evaluated frames has AP NaN and is left out of the means (nuScenes would
count it as 0); a class with ground truth but no predictions has AP 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.boxes import Boxes

NUSCENES_DISTANCE_THRESHOLDS_M: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: Recall sampling points of the precision/recall curve (nuScenes: 101).
RECALL_POINTS = 101


@dataclass(frozen=True)
class DetectionMAP:
    """mAP and its breakdown.

    ``ap[c, d]`` is the AP of class ``class_names[c]`` at threshold
    ``distance_thresholds_m[d]`` (NaN for a class without ground truth).
    """

    class_names: tuple[str, ...]
    distance_thresholds_m: tuple[float, ...]
    ap: np.ndarray
    num_ground_truth: tuple[int, ...]
    #: ``ap`` without the recall and precision clipping (step 5); None when not computed.
    ap_unclipped: np.ndarray | None = None

    @property
    def per_class(self) -> dict[str, float]:
        """AP per class, mean over thresholds (NaN for classes without ground truth)."""
        return {name: float(np.mean(self.ap[c])) for c, name in enumerate(self.class_names)}

    @property
    def per_class_unclipped(self) -> dict[str, float]:
        """Unclipped AP per class, mean over thresholds (NaN without ground truth)."""
        if self.ap_unclipped is None:
            raise ValueError("this DetectionMAP was built without unclipped APs (ap_unclipped=None)")
        return {name: float(np.mean(self.ap_unclipped[c])) for c, name in enumerate(self.class_names)}

    @property
    def mean_ap_unclipped(self) -> float:
        """mAP over the unclipped APs (classes with ground truth)."""
        return _mean_over_classes(self.per_class_unclipped, self.class_names)

    @property
    def per_threshold(self) -> dict[float, float]:
        """AP per distance threshold (metres), mean over classes with ground truth."""
        evaluated = ~np.isnan(self.ap[:, 0])
        return {
            d: float(np.mean(self.ap[evaluated, i])) if evaluated.any() else float("nan")
            for i, d in enumerate(self.distance_thresholds_m)
        }

    @property
    def mean_ap(self) -> float:
        """mAP: mean over thresholds and over classes with ground truth."""
        evaluated = ~np.isnan(self.ap[:, 0])
        return float(np.mean(self.ap[evaluated])) if evaluated.any() else float("nan")

    def to_dict(self) -> dict[str, object]:
        """Plain floats for JSON / Dagster metadata (thresholds as strings like ``"0.5m"``).

        With unclipped APs also ``mAP_unclipped``, ``per_class_unclipped``, and
        ``car_AP`` / ``non_car_mAP`` (plus ``_unclipped``): see :func:`headline_split`.
        """
        out: dict[str, object] = {
            "mAP": self.mean_ap,
            "per_class": self.per_class,
            "per_threshold": {f"{d:g}m": v for d, v in self.per_threshold.items()},
            "num_ground_truth": dict(zip(self.class_names, self.num_ground_truth)),
        }
        out.update(headline_split(self.per_class))
        if self.ap_unclipped is not None:
            unclipped = self.per_class_unclipped
            out["mAP_unclipped"] = self.mean_ap_unclipped
            out["per_class_unclipped"] = unclipped
            out.update({f"{k}_unclipped": v for k, v in headline_split(unclipped).items()})
        return out


HEADLINE_CLASS = "car"


def _mean_over_classes(per_class: dict[str, float], names) -> float:
    present = [per_class[n] for n in names if not np.isnan(per_class[n])]
    return float(np.mean(present)) if present else float("nan")


def headline_split(per_class: dict[str, float], headline: str = HEADLINE_CLASS) -> dict[str, float]:
    """``{"car_AP", "non_car_mAP"}``: the AP of ``headline`` and the mean AP of the other
    classes with ground truth (NaN where there is none; {} when ``headline`` is not a class)."""
    if headline not in per_class:
        return {}
    others = [name for name in per_class if name != headline]
    return {f"{headline}_AP": float(per_class[headline]),
            f"non_{headline}_mAP": _mean_over_classes(per_class, others)}


def average_precision(
    is_true_positive: np.ndarray,
    num_ground_truth: int,
    min_recall: float = 0.1,
    min_precision: float = 0.1,
) -> float:
    """nuScenes AP of predictions already ranked by descending score (steps 3-4 above).

    Args:
        is_true_positive: ``(P,)`` bool, the match outcome of each prediction in rank order.
        num_ground_truth: number of ground-truth objects of the class, ``> 0``.
    """
    if num_ground_truth <= 0:
        raise ValueError("average precision is undefined without ground truth (num_ground_truth must be > 0)")
    if not (0.0 <= min_recall < 1.0 and 0.0 <= min_precision < 1.0):
        raise ValueError(f"min_recall and min_precision must be in [0, 1), got {min_recall}, {min_precision}")
    hits = np.asarray(is_true_positive, dtype=bool)
    if hits.size == 0:
        return 0.0
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    precision = tp / (tp + fp)
    recall = tp / num_ground_truth
    # np.interp needs increasing sample points; recall repeats along a run of
    # false positives. Keep the first (highest-precision) point of each recall
    # level, so false positives after a level is reached only lower precision
    # at the next level. (nuScenes passes the repeats to np.interp as they are,
    # whose result for repeated points is undocumented.)
    first_of_level = np.r_[0, np.flatnonzero(np.diff(recall)) + 1]
    recall_points = np.linspace(0.0, 1.0, RECALL_POINTS)
    sampled = np.interp(recall_points, recall[first_of_level], precision[first_of_level], right=0.0)
    # nuScenes drops the recall points up to and including min_recall.
    first = int(round((RECALL_POINTS - 1) * min_recall)) + 1
    clipped = np.clip(sampled[first:] - min_precision, 0.0, None)
    return float(np.mean(clipped) / (1.0 - min_precision))


def _bev_centres(i: int, boxes: Boxes, what: str) -> np.ndarray:
    if not isinstance(boxes, Boxes):
        raise TypeError(f"frame {i}: {what} boxes must be core.boxes.Boxes, got {type(boxes).__name__}; "
                        "wrap the (n, 7) array: Boxes(array)")
    return boxes.bev_centres()


def _check_frame(i: int, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, what: str) -> None:
    if labels.shape != (boxes.shape[0],):
        raise ValueError(f"frame {i}: {boxes.shape[0]} {what} boxes but labels of shape {labels.shape}")
    if scores is not None and scores.shape != (boxes.shape[0],):
        raise ValueError(f"frame {i}: {boxes.shape[0]} predicted boxes but scores of shape {scores.shape}")
    if not np.isfinite(boxes[:, :2]).all() or (scores is not None and not np.isfinite(scores).all()):
        raise ValueError(f"frame {i}: {what} boxes or scores contain NaN/inf")


def _check_frame_counts(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels) -> None:
    n_frames = len(gt_boxes)
    if not (len(pred_boxes) == len(pred_scores) == len(pred_labels) == len(gt_labels) == n_frames):
        raise ValueError(
            "pred_boxes, pred_scores, pred_labels, gt_boxes and gt_labels must have one entry per frame; got "
            f"{len(pred_boxes)}, {len(pred_scores)}, {len(pred_labels)}, {n_frames}, {len(gt_labels)}"
        )


def _frame_arrays(i, pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, class_names):
    """Frame ``i``'s ``(pred BEV centres, scores, labels, gt BEV centres, gt labels)`` as checked numpy arrays."""
    pb = _bev_centres(i, pred_boxes[i], "predicted")
    ps = np.asarray(pred_scores[i], dtype=np.float64).reshape(-1)
    pl = np.asarray(pred_labels[i]).reshape(-1).astype(np.int64)
    gb = _bev_centres(i, gt_boxes[i], "ground-truth")
    gl = np.asarray(gt_labels[i]).reshape(-1).astype(np.int64)
    _check_frame(i, pb, pl, ps, "predicted")
    _check_frame(i, gb, gl, None, "ground-truth")
    for labels, what in ((pl, "predicted"), (gl, "ground-truth")):
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(
                f"frame {i}: {what} label {int(labels[(labels < 0) | (labels >= len(class_names))][0])} "
                f"is not an index into class_names {tuple(class_names)}"
            )
    return pb, ps, pl, gb, gl


def match_frame(
    pred_xy: np.ndarray, gt_xy: np.ndarray, threshold_m: float
) -> np.ndarray:
    """Greedy matching in one frame for one class; predictions already in rank order.

    Each prediction takes the nearest unmatched ground truth (BEV centre
    distance, metres); returns ``(P,)`` bool, true where that distance is below
    ``threshold_m``. A miss leaves the ground truth free for later predictions.
    """
    hits = np.zeros(pred_xy.shape[0], dtype=bool)
    if gt_xy.shape[0] == 0 or pred_xy.shape[0] == 0:
        return hits
    distances = np.linalg.norm(pred_xy[:, None, :] - gt_xy[None, :, :], axis=2)
    taken = np.zeros(gt_xy.shape[0], dtype=bool)
    for p in range(pred_xy.shape[0]):
        row = np.where(taken, np.inf, distances[p])
        nearest = int(np.argmin(row))
        if row[nearest] < threshold_m:
            hits[p] = True
            taken[nearest] = True
    return hits


def detection_map(
    pred_boxes: Sequence[Boxes],
    pred_scores: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    gt_boxes: Sequence[Boxes],
    gt_labels: Sequence[np.ndarray],
    *,
    class_names: Sequence[str],
    distance_thresholds_m: Sequence[float] = NUSCENES_DISTANCE_THRESHOLDS_M,
    min_recall: float = 0.1,
    min_precision: float = 0.1,
) -> DetectionMAP:
    """BEV centre-distance mAP over a set of frames (see the module docstring).

    Args:
        pred_boxes: per frame the ``n`` predicted :class:`~ceal_pipeline.core.boxes.Boxes`.
        pred_scores: per frame ``(n,)`` confidences.
        pred_labels: per frame ``(n,)`` class indices into ``class_names``.
        gt_boxes, gt_labels: per frame the ``m`` ground-truth boxes and ``(m,)`` labels.
        class_names: names of the label indices, e.g. ``frames.records.DETECTION_CLASSES``.
        distance_thresholds_m: match radii in metres.
    """
    n_frames = len(gt_boxes)
    _check_frame_counts(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels)
    thresholds = tuple(float(d) for d in distance_thresholds_m)
    if not thresholds or any(not d > 0 for d in thresholds):
        raise ValueError(f"distance_thresholds_m must be positive metres, got {distance_thresholds_m!r}")
    class_names = tuple(class_names)
    n_classes = len(class_names)

    frames = []
    for i in range(n_frames):
        pb, ps, pl, gb, gl = _frame_arrays(i, pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, class_names)
        frames.append((pb, ps, pl, gb, gl))

    ap = np.full((n_classes, len(thresholds)), np.nan)
    ap_unclipped = ap.copy()
    num_gt = []
    for c in range(n_classes):
        n_gt = int(sum(int((gl == c).sum()) for *_, gl in frames))
        num_gt.append(n_gt)
        if n_gt == 0:
            continue
        # Global rank of every prediction of the class: score descending, ties by
        # (frame, position) so the result does not depend on sort stability.
        scores, frame_of, pos_of = [], [], []
        for i, (_, ps, pl, _, _) in enumerate(frames):
            mine = np.flatnonzero(pl == c)
            scores.append(ps[mine])
            frame_of.append(np.full(mine.size, i))
            pos_of.append(mine)
        scores_all = np.concatenate(scores)
        frame_all = np.concatenate(frame_of)
        pos_all = np.concatenate(pos_of)
        rank = np.lexsort((pos_all, frame_all, -scores_all))
        # Greedy matching only interacts within a frame, so each frame is
        # matched on its own, in the global rank order restricted to it.
        place = np.empty(rank.size, dtype=np.int64)
        place[rank] = np.arange(rank.size)
        by_frame = np.lexsort((place, frame_all))
        bounds = np.searchsorted(frame_all[by_frame], np.arange(n_frames + 1))
        for d, threshold in enumerate(thresholds):
            hits = np.zeros(scores_all.size, dtype=bool)
            for i, (pxy, _, _, gxy, gl) in enumerate(frames):
                members = by_frame[bounds[i]:bounds[i + 1]]
                if members.size:
                    hits[members] = match_frame(pxy[pos_all[members]], gxy[gl == c], threshold)
            ap[c, d] = average_precision(hits[rank], n_gt, min_recall, min_precision)
            ap_unclipped[c, d] = average_precision(hits[rank], n_gt, 0.0, 0.0)
    return DetectionMAP(class_names, thresholds, ap, tuple(num_gt), ap_unclipped)


@dataclass(frozen=True)
class FrameErrors:
    """Per-frame detection errors at one BEV centre-distance threshold.

    ``missed[i]`` counts ground-truth boxes of frame ``i`` that no confident
    prediction of their class matched, ``false[i]`` confident predictions that
    matched nothing; ``errors = missed + false`` (box counts).
    """

    missed: np.ndarray
    false: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        return self.missed + self.false


def frame_detection_errors(
    pred_boxes: Sequence[Boxes],
    pred_scores: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    gt_boxes: Sequence[Boxes],
    gt_labels: Sequence[np.ndarray],
    *,
    n_classes: int,
    threshold_m: float = 2.0,
    min_confidence: float = 0.3,
) -> FrameErrors:
    """Missed and false boxes of every frame: how wrong the detector is on each frame.

    Per frame and class, the predictions with confidence ``>= min_confidence``
    are matched greedily in descending confidence (:func:`match_frame`, the
    matching of the mAP) to the ground truth within ``threshold_m`` metres
    (BEV centre distance). Unlike the mAP, which ranks predictions across
    frames, this is a count per frame, so it can be set against a per-frame
    acquisition value. Arguments as for :func:`detection_map`.
    """
    n_frames = len(gt_boxes)
    _check_frame_counts(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels)
    if not threshold_m > 0:
        raise ValueError(f"threshold_m must be positive metres, got {threshold_m!r}")
    class_names = [str(c) for c in range(n_classes)]
    missed = np.zeros(n_frames, dtype=np.int64)
    false = np.zeros(n_frames, dtype=np.int64)
    for i in range(n_frames):
        pb, ps, pl, gb, gl = _frame_arrays(i, pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, class_names)
        confident = ps >= min_confidence
        for c in range(n_classes):
            mine = np.flatnonzero(confident & (pl == c))
            mine = mine[np.lexsort((mine, -ps[mine]))]
            gt_xy = gb[gl == c]
            hits = match_frame(pb[mine], gt_xy, threshold_m)
            matched = int(hits.sum())
            missed[i] += gt_xy.shape[0] - matched
            false[i] += mine.size - matched
    return FrameErrors(missed=missed, false=false)
