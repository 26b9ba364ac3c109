"""Versioned detector checkpoints that load under ``torch.load(weights_only=True)``.

A checkpoint is one plain dict of tensors and primitives (no pickled classes):

``format``/``format_version``, ``version`` (the model version id stamped on
every score), ``config`` (the full detector config, so the file rebuilds its
model), ``state_dict``, ``optimizer`` (for resuming), ``epoch`` (epochs
completed), ``global_step``, ``run`` (what identifies the training run: config
name, seed, planned epochs, a hash of the training frame ids), ``metrics`` (the
last epoch's mean losses) and ``loss_curve`` (every epoch's, so far: a resumed
run carries the killed run's epochs on; absent in older files).

The version id is ``<config name>-<12 hex of sha256 over the weights>``: the same
weights always get the same id, different weights (practically) never do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "ceal-detector"
CHECKPOINT_FORMAT_VERSION = 1
_EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    """A saved detector: ``path`` to the file, ``version`` id, training ``metrics`` of the last
    epoch and ``loss_curve``, one ``{"epoch", "loss", "loss_heatmap", "loss_bbox", "seconds"}``
    per epoch trained so far."""

    path: Path
    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    loss_curve: tuple[dict[str, float], ...] = ()


def weights_version(name: str, state_dict: dict[str, torch.Tensor]) -> str:
    """The model version id ``<name>-<sha256[:12] of the weights>``."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(np.ascontiguousarray(tensor.view(-1).view(torch.uint8).numpy()).tobytes())
    return f"{name}-{digest.hexdigest()[:12]}"


def epoch_checkpoint_path(checkpoint_dir: str | Path, epoch: int) -> Path:
    return Path(checkpoint_dir) / f"epoch_{epoch:04d}.pt"


def latest_checkpoint_path(checkpoint_dir: str | Path) -> Path | None:
    """The checkpoint with the most completed epochs in ``checkpoint_dir``, or ``None``."""
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint(path: str | Path, *, model, optimizer=None, epoch: int, global_step: int,
                    run: dict[str, Any], metrics: dict[str, float],
                    loss_curve: tuple[dict[str, float], ...] = ()) -> Checkpoint:
    """Write a checkpoint atomically (temp file + rename: a killed run never leaves half a file)."""
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = weights_version(model.ceal_config["name"], state_dict)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "version": version,
        "config": model.ceal_config,
        "state_dict": state_dict,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "global_step": int(global_step),
        "run": dict(run),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "loss_curve": [{k: float(v) for k, v in entry.items()} for entry in loss_curve],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return Checkpoint(path=path, version=version, metrics=payload["metrics"],
                      loss_curve=tuple(payload["loss_curve"]))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``, checking its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detector checkpoint {path} does not exist: train a detector first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/foreign files
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(
            f"detector checkpoint {path} cannot be read ({type(exc).__name__}: {first_line}); delete it and retrain"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a ceal detector checkpoint (no format={CHECKPOINT_FORMAT!r} key)")
    if payload.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {payload.get('format_version')}, this code reads "
            f"{CHECKPOINT_FORMAT_VERSION}: retrain the detector with this version"
        )
    return payload


def load_detector(path: str | Path, device: str | torch.device = "auto"):
    """Rebuild a detector from a checkpoint file.

    Returns ``(model, version)`` with the model in eval mode on ``device``
    (``"auto"`` = CUDA if available).
    """
    from ceal_pipeline.detector.builder import build_detector, resolve_device
    from ceal_pipeline.detector.mmdet3d_adapter import adapter_checkpoint_meta, load_mmdet3d_checkpoint

    if Path(path).is_file() and adapter_checkpoint_meta(path) is not None:  # a brought mmdet3d detector's round
        model, version = load_mmdet3d_checkpoint(path)
        return model.to(resolve_device(device)).eval(), version
    payload = read_checkpoint(path)
    model = build_detector(payload["config"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(resolve_device(device)).eval(), payload["version"]
