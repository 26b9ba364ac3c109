"""``detector.train``: fine-tune a brought mmdet3d detector on the labeled frames, or keep it frozen.

``fine_tune`` runs the model's own losses (``model.loss``: its assigners, box
coder and loss weights, as mmdet3d trains it) under the optimiser its config
names, built by mmengine (``build_optim_wrapper(model, cfg.optim_wrapper)``:
AdamW with gradient clipping in the shipped PointPillars and CenterPoint
configs), one frame per step, frames shuffled by ``seed``. Labeled boxes are
given to the model under its own classes (:class:`~.mmdet3d_adapter.ClassMapping`:
each ontology class trains the first model class mapped to it); boxes of
ontology classes the model lacks are left out and counted. ``frozen`` trains
nothing: the round scores with the given weights as they are.

The learning-rate schedule of the config (``param_scheduler``) is not run: a
round's fine-tuning is a few hundred steps, not the config's epochs.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ceal_pipeline.detector.mmdet3d_adapter import TRAIN_MODES, Mmdet3dDetector
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.records import FrameRecord


@dataclass
class FineTuneReport:
    """What a fine-tuning run did: steps, mean loss per epoch, boxes left out by class."""

    mode: str
    steps: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    boxes_left_out: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _data_sample(detector: Mmdet3dDetector, frame: FrameRecord, left_out: dict[str, int]):
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
    from mmengine.structures import InstanceData

    mapping = detector.class_mapping
    labels = np.array([mapping.model_label_of(label) for label in frame.labels], dtype=np.int64)
    for label, model_label in zip(frame.labels, labels):
        if model_label < 0:
            name = mapping.ontology[int(label)]
            left_out[name] = left_out.get(name, 0) + 1
    keep = labels >= 0
    code_size = getattr(detector.box_head.bbox_coder, "code_size", 7)
    boxes = np.zeros((int(keep.sum()), max(code_size, 7)), dtype=np.float32)  # velocities (if any) 0
    boxes[:, :7] = frame.boxes[keep]
    sample = Det3DDataSample(metainfo={"box_type_3d": LiDARInstance3DBoxes})
    sample.gt_instances_3d = InstanceData(
        bboxes_3d=LiDARInstance3DBoxes(torch.from_numpy(boxes), box_dim=boxes.shape[1]),
        labels_3d=torch.from_numpy(labels[keep]))
    return sample


def fine_tune(detector: Mmdet3dDetector, frames: Sequence[FrameRecord], *, mode: str = "fine_tune",
              epochs: int = 1, seed: int = 0, max_steps: int | None = None) -> FineTuneReport:
    """Train ``detector`` in place on the labeled ``frames`` (see the module docstring)."""
    if mode not in TRAIN_MODES:
        raise ValueError(f"detector.train={mode!r}: use one of {TRAIN_MODES}")
    report = FineTuneReport(mode=mode)
    if mode == "frozen":
        return report
    from mmengine.config import ConfigDict
    from mmengine.optim import build_optim_wrapper

    labeled = [frame for frame in frames if frame.is_labeled]
    if not labeled:
        raise ValueError("fine_tune needs labeled frames; none of the given frames has boxes")
    config = detector.ceal_config["mmdet3d_config"]
    optim_config = ConfigDict(config.get("optim_wrapper") or {"type": "OptimWrapper",
                                                               "optimizer": {"type": "AdamW", "lr": 1e-3}})
    started = time.perf_counter()
    model = detector.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optim_wrapper = build_optim_wrapper(model, optim_config)
        order = random.Random(seed)
        model.train()
        try:
            for _ in range(epochs):
                losses = []
                shuffled = list(labeled)
                order.shuffle(shuffled)
                for frame in shuffled:
                    if max_steps is not None and report.steps >= max_steps:
                        break
                    points = [detector.prepare_points(load_points(frame))]
                    samples = [_data_sample(detector, frame, report.boxes_left_out)]
                    data = model.data_preprocessor({"inputs": {"points": points}, "data_samples": samples}, True)
                    loss, _ = model.parse_losses(model.loss(data["inputs"], data["data_samples"]))
                    optim_wrapper.update_params(loss)
                    losses.append(float(loss.detach()))
                    report.steps += 1
                if losses:
                    report.epoch_losses.append(float(np.mean(losses)))
        finally:
            model.eval()
    report.seconds = time.perf_counter() - started
    return report
