"""Resumable training of the detector on labeled frames.

A plain loop rather than mmengine's ``Runner``: our frames are
:class:`FrameRecord` lists rather than an mmdet3d dataset, and the loop has to
make one promise the Runner does not: *a run killed after epoch e and resumed
gives bit-for-bit the weights of an uninterrupted run* (on the same device).
That holds because everything random in epoch ``e`` (frame order, training
dropout) is seeded from ``derive_seed(seed, e, "detector_training")``, the
learning rate is a pure function of the global step, and each epoch ends with
an atomically written checkpoint of weights + optimiser state.

Two things make the trained weights generalise and the saved model match them
(issue 18), both set in the config's ``train`` section and on by default:

- ``augmentation``: a random global flip / rotation / scaling of each training
  frame (:mod:`ceal_pipeline.detector.augmentation`), drawn from
  ``derive_seed(seed, e, "augmentation")``;
- ``bn_recalibration``: after the last epoch, one pass over the labeled frames
  (no gradient, no augmentation, dropout off) recomputes every BatchNorm's
  running mean and variance as a plain average over the pass
  (:func:`recalibrate_batch_norm`). With BN momentum 0.01 and a round's 30-150
  steps, 20-75 % of each running statistic would otherwise still be its
  initial value, and evaluation and MC-Dropout scoring, both in eval mode,
  would run on statistics that do not belong to the weights.

The warm-up is at most a fifth of the run's steps (:func:`learning_rate`), so a
short warm-started round is not mostly warm-up.

``repeats`` oversamples frames: an epoch is then one pass over the *expanded*
order, in which frame ``i`` appears ``repeats[i]`` times (shuffled together
each epoch), so steps per epoch, the learning-rate schedule and the epoch's
mean losses count the expanded pass. ``repeats=None`` (or all ones) trains
exactly as without it. BatchNorm recalibration still passes over each frame
once: its statistics describe the frames, not the sampling.

``max_steps`` counts a run in optimiser steps instead of epochs: the run takes
exactly that many steps, ``ceil(max_steps / steps_per_epoch)`` epochs of which
the last may stop part-way (its first batches of that epoch's order); the
learning-rate schedule spans exactly ``max_steps`` steps, and the last, partial
epoch ends like any last epoch (BatchNorm recalibration when configured, a
checkpoint). Its mean losses are over the frames it visited.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.detector.augmentation import GlobalAugmentation, augment_batch
from ceal_pipeline.detector.builder import build_detector, load_config, resolve_device
from ceal_pipeline.detector.checkpoints import (
    Checkpoint,
    epoch_checkpoint_path,
    latest_checkpoint_path,
    read_checkpoint,
    save_checkpoint,
)
from ceal_pipeline.detector.loader import BatchOrder, FrameDataset, check_repeats, frame_loader
from ceal_pipeline.frames.records import FrameRecord


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_iters: int) -> float:
    """Linear warm-up for ``min(warmup_iters, total_steps // 5)`` steps, then cosine decay to 1%
    of ``base_lr`` at ``total_steps``."""
    warmup_iters = min(warmup_iters, total_steps // 5)
    if warmup_iters > 0 and step < warmup_iters:
        return base_lr * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, total_steps - warmup_iters))
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _frames_digest(frames: Sequence[FrameRecord]) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame.frame_id.encode() + b"\n")
    return digest.hexdigest()[:16]


@torch.no_grad()
def recalibrate_batch_norm(model, frames: Sequence[FrameRecord], *, device, batch_size: int,
                           num_workers: int | None = None) -> int:
    """Recompute every BatchNorm's running statistics from one pass over ``frames``; returns the layers reset.

    Each BN layer's running mean and variance become the average of its batch
    statistics over the pass (``momentum=None``, PyTorch's cumulative average);
    every other module runs in eval mode (dropout off) and no weight changes.
    The model is left in eval mode with its configured momentum.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not frames:
        return 0
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        loader = frame_loader(FrameDataset.for_model(frames, model), batch_size=batch_size, num_workers=num_workers,
                              device=device)
        for cpu_batch in loader:
            model.bbox_head.forward_deterministic(model.extract_bev(cpu_batch.to(device, non_blocking=True)))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return len(norms)


def _check_labeled(frames: Sequence[FrameRecord]) -> None:
    if not frames:
        raise ValueError("train_detector got no frames: the labeled set is empty")
    unlabeled = [f.frame_id for f in frames if not f.is_labeled]
    if unlabeled:
        raise ValueError(
            f"{len(unlabeled)} training frames have no labels (first: {unlabeled[:3]}); "
            "train only on the labeled set"
        )


def train_detector(
    frames: Sequence[FrameRecord],
    config: str | Path | dict = "bevfusion_tiny",
    checkpoint_dir: str | Path = ".ceal/detector",
    epochs: int | None = None,
    seed: int = 0,
    resume: bool = True,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    init_checkpoint: str | Path | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    num_workers: int | None = None,
    repeats: Sequence[int] | None = None,
    max_steps: int | None = None,
) -> Checkpoint:
    """Train (or resume training) the detector; one checkpoint per epoch.

    Args:
        frames: labeled frames to train on.
        config: detector config name/path/dict (see :func:`build_detector`).
        checkpoint_dir: where ``epoch_NNNN.pt`` files go; one training run per folder.
        epochs: total epochs of the run (a resumed run continues up to this); default 10.
            Give either ``epochs`` or ``max_steps``, not both.
        seed: seeds initialisation, frame order and training dropout.
        resume: continue from the latest checkpoint in ``checkpoint_dir`` if it is
            the same run (same config name, seed, epochs and frames); ``False``
            starts over.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``.
        batch_size: frames per step; default the config's ``data.batch_size``.
        init_checkpoint: warm-start weights (e.g. last round's detector) for a new run.
        log: called after every epoch with ``{"epoch", "loss", "loss_heatmap", "loss_bbox", "seconds"}``.
        num_workers: processes reading frames ahead of the training step, kept for
            the whole run (see :func:`~ceal_pipeline.detector.loader.frame_loader`);
            ``None`` = the default, ``0`` = in this process. The weights do not depend on it.
        repeats: how often each frame is visited per epoch (one count >= 1 per frame,
            e.g. 3 for the frames bought in the latest round, 1 for the others);
            ``None`` = once each. Epochs, steps per epoch and the learning-rate schedule
            count the expanded pass of ``sum(repeats)`` frames. Part of the run's identity
            (a resume with other repeats is refused).
        max_steps: the run's length in optimiser steps instead of epochs: exactly this many
            steps (>= 1), over ``ceil(max_steps / steps_per_epoch)`` epochs, the last one cut
            short when ``max_steps`` is not a multiple of ``steps_per_epoch``
            (``ceil(sum(repeats) / batch_size)``); the learning-rate schedule spans ``max_steps``.
            Part of the run's identity when given (runs counted in epochs keep theirs).

    Returns:
        the :class:`Checkpoint` of the last epoch (``metrics``: mean losses of that epoch;
        ``loss_curve``: those of every epoch of the run, including epochs before a resume).
    """
    _check_labeled(frames)
    if max_steps is not None:
        if epochs is not None:
            raise ValueError(f"train_detector takes epochs or max_steps, not both (got epochs={epochs}, "
                             f"max_steps={max_steps}): max_steps sets the epochs itself")
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be a whole number of optimiser steps >= 1 (or None to count "
                             f"the run in epochs), got {max_steps!r}")
        max_steps = int(max_steps)
    elif epochs is None:
        epochs = 10
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    config_dict = load_config(config)
    device = resolve_device(device)
    batch_size = int(batch_size or config_dict["data"].get("batch_size", 4))
    try:
        repeat_counts = check_repeats(repeats, len(frames))
    except ValueError as error:
        raise ValueError(f"train_detector: {error}") from None
    epoch_frames = int(repeat_counts.sum())
    steps_per_epoch = math.ceil(epoch_frames / batch_size)
    if max_steps is not None:
        epochs = math.ceil(max_steps / steps_per_epoch)
        total_steps = max_steps
    else:
        total_steps = epochs * steps_per_epoch
    run = {
        "config_name": config_dict["name"],
        "seed": int(seed),
        "epochs": int(epochs),
        "batch_size": batch_size,
        "frames": len(frames),
        "frames_sha256": _frames_digest(frames),
    }
    if np.any(repeat_counts != 1):
        # Only when some frame repeats, so that runs without repeats keep the identity
        # of the checkpoints written before repeats existed (and still resume from them).
        run["repeats"] = repeat_counts.tolist()
    if max_steps is not None:
        # Likewise only when given: runs counted in epochs keep their identity.
        run["max_steps"] = max_steps

    model = build_detector(config_dict, seed=seed)
    if init_checkpoint is not None:
        model.load_state_dict(read_checkpoint(init_checkpoint)["state_dict"], strict=True)
    model.to(device)
    train_cfg = config_dict["train"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])

    start_epoch, global_step = 0, 0
    loss_curve: list[dict[str, float]] = []
    latest = latest_checkpoint_path(checkpoint_dir) if resume else None
    if latest is not None:
        state = read_checkpoint(latest)
        if state["run"] != run:
            raise ValueError(
                f"{checkpoint_dir} holds checkpoints of a different training run ({state['run']}), not {run}: "
                "use a new checkpoint_dir per run, or resume=False to start over"
            )
        model.load_state_dict(state["state_dict"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        loss_curve = list(state.get("loss_curve", []))
        if start_epoch >= epochs:
            return Checkpoint(path=latest, version=state["version"], metrics=state["metrics"],
                              loss_curve=tuple(loss_curve))

    augmentation = GlobalAugmentation.from_config(train_cfg)
    batch_order = BatchOrder(len(frames), batch_size, repeats=repeat_counts)
    expanded = batch_order.expanded()  # np.arange(len(frames)) without repeats
    loader = frame_loader(FrameDataset.for_model(frames, model, with_labels=True), batch_order=batch_order,
                          num_workers=num_workers, device=device, persistent_workers=True)
    checkpoint = None
    for epoch in range(start_epoch, epochs):
        epoch_seed = derive_seed(seed, epoch, "detector_training")
        # Without repeats, expanded[permutation] is the permutation itself: the same order as ever.
        # Every epoch is whole but, with max_steps, the last: its first steps of this epoch's order.
        batch_order.set_order(expanded[np.random.default_rng(epoch_seed).permutation(epoch_frames)],
                              batches=min(steps_per_epoch, total_steps - global_step))
        torch.manual_seed(epoch_seed)  # training-time dropout of this epoch
        augmentation_rng = np.random.default_rng(derive_seed(seed, epoch, "augmentation"))
        model.train()
        started = time.perf_counter()
        totals = {"loss": 0.0, "loss_heatmap": 0.0, "loss_bbox": 0.0}
        visited = 0  # frames (with repeats) of this epoch's steps: epoch_frames unless cut short
        for cpu_batch in loader:
            batch = cpu_batch.to(device, non_blocking=True)
            if augmentation is not None:
                batch = augment_batch(batch, augmentation, augmentation_rng, model.point_cloud_range)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(global_step, total_steps, train_cfg["lr"], train_cfg.get("warmup_iters", 0))
            losses = model.loss(batch)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss {loss.item()} at epoch {epoch}, step {global_step} "
                    f"(frames {batch.frame_ids}); lower train.lr in the config or check these frames' boxes"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.get("grad_clip"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
            optimizer.step()
            global_step += 1
            visited += len(batch.frame_ids)
            totals["loss"] += float(loss.item()) * len(batch.frame_ids)
            for key in ("loss_heatmap", "loss_bbox"):
                totals[key] += float(losses[key].item()) * len(batch.frame_ids)
        metrics = {key: value / visited for key, value in totals.items()}
        metrics["seconds"] = time.perf_counter() - started
        loss_curve.append({"epoch": float(epoch + 1), **metrics})
        if epoch + 1 == epochs and train_cfg.get("bn_recalibration", False):
            recalibrate_batch_norm(model, frames, device=device, batch_size=batch_size, num_workers=num_workers)
        model.eval()
        checkpoint = save_checkpoint(
            epoch_checkpoint_path(checkpoint_dir, epoch + 1),
            model=model, optimizer=optimizer, epoch=epoch + 1, global_step=global_step, run=run, metrics=metrics,
            loss_curve=tuple(loss_curve),
        )
        if log is not None:
            log({"epoch": epoch + 1, **metrics})
    return checkpoint
