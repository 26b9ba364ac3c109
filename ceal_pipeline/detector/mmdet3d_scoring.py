"""MC-Dropout scoring with a brought mmdet3d detector (:mod:`.mmdet3d_adapter`).

The same :class:`~ceal_pipeline.detector.scoring.FrameScores` as the built-in
models, from the same core functions (localization entropy, heatmap and class
entropy, the explanations): only how the ``T`` passes are produced differs
(:mod:`.mmdet3d_mc_heads`).

* ``head``: voxelisation, backbone and neck (and CenterHead's shared conv) run
  once per batch; the head's branches run ``T`` times, each with its dropout mask.
* ``full``: the whole network runs ``T`` times, each pass ending in the same
  masked head. The network before the dropout is deterministic in eval mode, so
  both modes give the same scores (tested); ``full`` is what naive MC-Dropout
  costs, kept for ``ceal bench mc``.

The heatmap the functions read carries the ``T`` passes (dropout sits before the
classification branch too), so class entropy is the entropy of the mean class
distribution over the passes.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from ceal_pipeline.core.detection_acquisition import DetectionMCOutputs
from ceal_pipeline.detector.mmdet3d_adapter import Mmdet3dDetector
from ceal_pipeline.detector.mmdet3d_mc_heads import dropout_mask
from ceal_pipeline.detector.scoring import (
    MODES,
    FrameScores,
    acquisition_setup,
    bev_embedding,
    collected_scores,
    frame_objects,
)
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.records import FrameRecord


@torch.no_grad()
def mc_passes(detector: Mmdet3dDetector, points: list[torch.Tensor], T: int, mode: str, seed: int):
    """Run one batch: ``(DetectionMCOutputs, peaks, embedding (B, 2 C))`` of ``T`` passes in ``mode``;
    the embedding is :func:`~ceal_pipeline.detector.scoring.bev_embedding` of the neck's map."""
    if mode not in MODES:
        raise ValueError(f"unknown MC-Dropout mode {mode!r}; choose one of {MODES}")
    head = detector.head
    features = detector.features(points)
    embedding = bev_embedding(features[0])
    trunk = head.trunk(features)
    reference = head.outputs(trunk, None)
    peaks = head.find_objects(reference)
    mask_shape = tuple(trunk.shape[1:])
    heatmaps, boxes = [], []
    for t in range(T):
        if mode == "full" and t > 0:  # pass 0 reuses the trunk computed above: T backbone runs in all
            trunk = head.trunk(detector.features(points))
        outputs = head.outputs(trunk, dropout_mask(mask_shape, detector.dropout, seed, t))
        heatmaps.append(head.heatmap_logits(outputs).sigmoid())
        boxes.append(head.decode(outputs, peaks, reference))
    outputs = DetectionMCOutputs(
        box_samples=torch.stack(boxes).double().cpu().numpy(),
        frame_index=peaks.frame_index.cpu().numpy(),
        peak_cell=peaks.cell.cpu().numpy(),
        heatmap_probs=torch.stack(heatmaps).double().cpu().numpy(),
    )
    return outputs, peaks, embedding


def score_frames_mmdet3d(
    detector: Mmdet3dDetector,
    frames: Sequence[FrameRecord],
    T: int = 10,
    mode: str = "head",
    seed: int = 0,
    aggregate: str = "mean",
    batch_size: int = 1,
    covariance_floor: float = 1e-4,
    empty: float | None = None,
    acquisition_fn: str = "localization_entropy",
    extra_acquisition_fns: Sequence[str] = (),
) -> FrameScores:
    """Score ``frames`` with the brought detector; arguments as
    :func:`ceal_pipeline.detector.scoring.score_frames` (on the CPU; frames are
    read in this process). ``FrameScores.class_names`` are the model's classes."""
    functions, settings = acquisition_setup(acquisition_fn, extra_acquisition_fns, T, aggregate=aggregate,
                                            covariance_floor=covariance_floor, empty=empty)
    detector.eval()
    started = time.perf_counter()
    frame_ids: list[str] = []
    parts: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in functions}
    objects, embeddings = [], []
    for start in range(0, len(frames), batch_size):
        batch = list(frames[start:start + batch_size])
        points = [detector.prepare_points(load_points(frame)) for frame in batch]
        outputs, peaks, embedding = mc_passes(detector, points, T, mode, seed)
        embeddings.append(embedding.float().cpu().numpy())
        frame_ids.extend(frame.frame_id for frame in batch)
        for name, function in functions.items():
            parts[name].append(function.frame_terms(outputs, settings))
        objects.extend(frame_objects(outputs, peaks, covariance_floor))
    return collected_scores(frame_ids, parts, objects, embeddings, functions=functions, settings=settings,
                            acquisition_fn=acquisition_fn, passes=T, mode=mode, seed=seed, aggregate=aggregate,
                            class_names=detector.class_names, started=started)
