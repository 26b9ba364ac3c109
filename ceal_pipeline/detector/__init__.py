"""The BEVFusion-like detector: build, train, checkpoint, evaluate, MC-Dropout scoring.

Public API (imported lazily, so importing this package costs nothing until used
and nothing touches CUDA at import time):

- ``build_detector(config_path_or_name="bevfusion_lite", *, seed=0, **overrides) -> nn.Module``
- ``training.train_detector(frames, config, checkpoint_dir, epochs, seed, resume=True, device="auto", num_workers=None,
  repeats=None, max_steps=None) -> Checkpoint`` (``max_steps``: exactly that many optimiser steps instead of epochs)
- ``checkpoints.load_detector(path, device="auto") -> (model, version)``
- ``scoring.score_frames(model, frames, T, mode="head"|"full", seed, aggregate="mean", device, batch_size,
  num_workers=None, acquisition_fn="localization_entropy") -> FrameScores``
  (frames are read ahead by ``loader.frame_loader``'s worker processes)
- ``evaluation.evaluate_detector(model, frames, device="auto") -> dict`` (mAP, per-class AP)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_detector": "ceal_pipeline.detector.builder",
    "resolve_device": "ceal_pipeline.detector.builder",
    "train_detector": "ceal_pipeline.detector.training",
    "Checkpoint": "ceal_pipeline.detector.checkpoints",
    "load_detector": "ceal_pipeline.detector.checkpoints",
    "score_frames": "ceal_pipeline.detector.scoring",
    "FrameScores": "ceal_pipeline.detector.scoring",
    "evaluate_detector": "ceal_pipeline.detector.evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
