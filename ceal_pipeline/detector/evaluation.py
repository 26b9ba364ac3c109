"""Detector evaluation: BEV centre-distance mAP per class (nuScenes thresholds 0.5, 1, 2, 4 m).

The metric itself lives in :mod:`ceal_pipeline.core.detection_metrics` (numpy);
this module only runs the detector and lines its outputs up with the frames'
ground truth.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.detection_metrics import (
    NUSCENES_DISTANCE_THRESHOLDS_M,
    FrameErrors,
    detection_map,
    frame_detection_errors,
)
from ceal_pipeline.detector.bevfusion import Detections
from ceal_pipeline.detector.builder import resolve_device
from ceal_pipeline.detector.inputs import ground_truth
from ceal_pipeline.detector.loader import FrameDataset, frame_loader
from ceal_pipeline.frames.records import FrameRecord


def evaluate_predictions(
    detections: Sequence[Detections],
    frames: Sequence[FrameRecord],
    class_names: Sequence[str],
    distance_thresholds_m: Sequence[float] = NUSCENES_DISTANCE_THRESHOLDS_M,
    bev_range: Sequence[float] | None = None,
) -> dict:
    """mAP of per-frame detections against the frames' labels.

    ``bev_range`` ``(x0, y0, x1, y1)`` metres, if given, keeps only ground truth and
    predictions whose centre lies inside it: like nuScenes' per-class evaluation
    ranges, objects the detector cannot see (outside its grid) are not counted
    as misses.

    Returns ``{"mAP", "per_class", "per_threshold", "num_ground_truth", "frames", "detections"}``
    (APs in [0, 1]; NaN for a class without ground truth in these frames).
    """
    if len(detections) != len(frames):
        raise ValueError(f"{len(detections)} detection sets for {len(frames)} frames: pass one per frame")
    truths, preds = _within_bev_range(detections, frames, class_names, bev_range)
    result = detection_map(
        [Boxes(b) for b, _, _ in preds],
        [s for _, s, _ in preds],
        [l for _, _, l in preds],
        [Boxes(boxes) for boxes, _ in truths],
        [labels for _, labels in truths],
        class_names=class_names,
        distance_thresholds_m=distance_thresholds_m,
    ).to_dict()
    result["frames"] = len(frames)
    result["detections"] = int(sum(len(d.scores) for d in detections))
    return result


def _within_bev_range(detections, frames, class_names, bev_range):
    """Per frame ``(gt boxes, gt labels)`` and ``(pred boxes, scores, labels)`` as numpy,
    keeping only centres inside ``bev_range`` ``(x0, y0, x1, y1)`` metres when given."""
    truths = [ground_truth(frame, class_names) for frame in frames]
    preds = [(d.boxes.detach().cpu().numpy(), d.scores.detach().cpu().numpy(), d.labels.detach().cpu().numpy())
             for d in detections]
    if bev_range is not None:
        x0, y0, x1, y1 = (float(v) for v in bev_range)

        def inside(boxes):
            return (boxes[:, 0] >= x0) & (boxes[:, 0] < x1) & (boxes[:, 1] >= y0) & (boxes[:, 1] < y1)

        truths = [(boxes[inside(boxes)], labels[inside(boxes)]) for boxes, labels in truths]
        preds = [(b[inside(b)], s[inside(b)], l[inside(b)]) for b, s, l in preds]
    return truths, preds


def detection_errors(
    detections: Sequence[Detections],
    frames: Sequence[FrameRecord],
    class_names: Sequence[str],
    *,
    threshold_m: float = 2.0,
    min_confidence: float = 0.3,
    bev_range: Sequence[float] | None = None,
) -> FrameErrors:
    """Missed and false boxes per frame (see
    :func:`~ceal_pipeline.core.detection_metrics.frame_detection_errors`), with the
    same ``bev_range`` rule as :func:`evaluate_predictions`."""
    if len(detections) != len(frames):
        raise ValueError(f"{len(detections)} detection sets for {len(frames)} frames: pass one per frame")
    truths, preds = _within_bev_range(detections, frames, class_names, bev_range)
    return frame_detection_errors(
        [Boxes(b) for b, _, _ in preds], [s for _, s, _ in preds], [l for _, _, l in preds],
        [Boxes(boxes) for boxes, _ in truths], [labels for _, labels in truths],
        n_classes=len(class_names), threshold_m=threshold_m, min_confidence=min_confidence,
    )


def bev_range_of(model) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` metres of the detector's BEV grid: what it can see."""
    x0, y0, _, x1, y1, _ = model.point_cloud_range
    return (x0, y0, x1, y1)


@torch.no_grad()
def predict_frames(
    model,
    frames: Sequence[FrameRecord],
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> list[Detections]:
    """Deterministic detections (dropout off) of every frame, in frame order; arguments
    as for :func:`evaluate_detector`."""
    if not frames:
        raise ValueError("predict_frames got no frames: pass held-out labeled frames")
    device = resolve_device(device)
    model.to(device).eval()
    batch_size = int(batch_size or model.ceal_config["data"].get("batch_size", 4))
    loader = frame_loader(FrameDataset.for_model(frames, model), batch_size=batch_size, num_workers=num_workers,
                          device=device)
    detections: list[Detections] = []
    for batch in loader:
        detections.extend(model.predict(batch.to(device, non_blocking=True)))
    return detections


@torch.no_grad()
def evaluate_detector(
    model,
    frames: Sequence[FrameRecord],
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> dict:
    """Run the detector deterministically (dropout off) on labeled frames and return its mAP dict.

    Objects outside the detector's BEV grid are left out; see
    :func:`evaluate_predictions` for the keys. ``device="auto"`` uses CUDA if available;
    ``batch_size`` defaults to the config's; ``num_workers`` processes read frames
    ahead of the model (see :func:`~ceal_pipeline.detector.loader.frame_loader`).
    """
    if not frames:
        raise ValueError("evaluate_detector got no frames: pass held-out labeled frames")
    if getattr(model, "ceal_config", {}).get("kind") == "mmdet3d":  # a brought mmdet3d detector
        from ceal_pipeline.detector.mmdet3d_rounds import evaluate_mmdet3d

        return evaluate_mmdet3d(model, frames)
    detections = predict_frames(model, frames, device=device, batch_size=batch_size, num_workers=num_workers)
    return evaluate_predictions(detections, frames, model.class_names, bev_range=bev_range_of(model))
