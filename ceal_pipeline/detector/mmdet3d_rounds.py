"""A round with a brought mmdet3d detector: train (``fine_tune`` or ``frozen``), predict, evaluate.

What :class:`~ceal_pipeline.defs.resources.ModelStoreResource` calls when
``detector.config`` is an mmdet3d config file
(:func:`~ceal_pipeline.detector.mmdet3d_adapter.is_mmdet3d_config`): the round's
detector starts from the previous round's checkpoint when warm-started, else
from ``detector.checkpoint`` (the team's weights; random initialisation when
unset), is fine-tuned on the labeled frames or kept frozen, and is saved as
``epoch_NNNN.pt`` in the round's folder (an mmengine-style checkpoint that
:func:`~ceal_pipeline.detector.checkpoints.load_detector` also opens). A round
whose checkpoint is already there (a killed run restarted) loads it instead of
training again.

Predictions and mAP are in the ontology's classes: detections of a model class
with no ontology class are left out of pre-labels and evaluation, and counted
(``unmapped_detections``) and logged, never dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ceal_pipeline.detector.checkpoints import Checkpoint, epoch_checkpoint_path
from ceal_pipeline.detector.mmdet3d_adapter import (
    Mmdet3dDetector,
    build_mmdet3d_detector,
    load_mmdet3d_checkpoint,
    save_checkpoint,
)
from ceal_pipeline.detector.mmdet3d_training import fine_tune
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.records import DETECTION_CLASSES, FrameRecord

LOG = logging.getLogger(__name__)


def train_round(frames: Sequence[FrameRecord], config: str | Path, checkpoint_dir: str | Path, *, epochs: int,
                seed: int, train_mode: str = "fine_tune", team_checkpoint: str | Path | None = None,
                init_checkpoint: str | Path | None = None,
                log: Callable[[dict], None] | None = None) -> Checkpoint:
    """Train one round's detector (see the module docstring); ``epochs`` of fine-tuning, 0 when frozen."""
    epochs_done = epochs if train_mode == "fine_tune" else 0
    path = epoch_checkpoint_path(checkpoint_dir, epochs_done)
    if path.is_file():
        _, version = load_mmdet3d_checkpoint(path)
        return Checkpoint(path=path, version=version)
    if init_checkpoint is not None:
        detector, _ = load_mmdet3d_checkpoint(init_checkpoint)
    else:
        detector = build_mmdet3d_detector(config, checkpoint=team_checkpoint, seed=seed)
    report = fine_tune(detector, frames, mode=train_mode, epochs=epochs, seed=seed)
    curve = tuple({"epoch": float(i + 1), "loss": loss} for i, loss in enumerate(report.epoch_losses))
    for entry in curve:
        if log is not None:
            log(dict(entry))
    if report.boxes_left_out:
        LOG.warning("fine-tuning %s: labeled boxes of classes the model lacks were left out: %s",
                    detector.ceal_config["name"], report.boxes_left_out)
    version = save_checkpoint(detector, path)
    metrics = {"loss": curve[-1]["loss"]} if curve else {}
    return Checkpoint(path=path, version=version, metrics=metrics, loss_curve=curve)


@torch.no_grad()
def predict_ontology(detector: Mmdet3dDetector, frames: Sequence[FrameRecord]):
    """Deterministic detections per frame in ontology labels: ``(list of Detections, unmapped counts)``.

    ``Detections.labels`` index :data:`~ceal_pipeline.frames.records.DETECTION_CLASSES`;
    the counter holds, by model class, the detections left out for having none."""
    from ceal_pipeline.detector.bevfusion import Detections

    detector.eval()
    to_ontology = torch.tensor(detector.class_mapping.to_ontology, dtype=torch.long)
    unmapped: Counter = Counter()
    out = []
    for frame in frames:
        head = detector.head
        reference = head.outputs(head.trunk(detector.features([detector.prepare_points(load_points(frame))])), None)
        peaks = head.find_objects(reference)
        boxes = head.decode(reference, peaks, reference)
        labels = to_ontology[peaks.label.cpu()]
        for label in peaks.label[labels < 0].tolist():
            unmapped[detector.class_names[label]] += 1
        keep = labels >= 0
        out.append(Detections(boxes=boxes[keep].cpu(), scores=peaks.score[keep].cpu(), labels=labels[keep]))
    if unmapped:
        LOG.warning("%s: %s detections of model classes outside the ontology were left out of the predictions",
                    detector.ceal_config["name"], dict(unmapped))
    return out, unmapped


def evaluate_mmdet3d(detector: Mmdet3dDetector, frames: Sequence[FrameRecord]) -> dict:
    """mAP of the brought detector on labeled frames, in the ontology's classes, inside its point-cloud range."""
    from ceal_pipeline.detector.evaluation import evaluate_predictions

    detections, unmapped = predict_ontology(detector, frames)
    config = detector.ceal_config["mmdet3d_config"]
    x0, y0, _, x1, y1, _ = config.get("point_cloud_range") or (-np.inf, -np.inf, 0, np.inf, np.inf, 0)
    result = evaluate_predictions(detections, frames, DETECTION_CLASSES, bev_range=(x0, y0, x1, y1))
    result["unmapped_detections"] = dict(unmapped)
    return result
