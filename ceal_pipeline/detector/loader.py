"""Reading frames for the detector in worker processes, ahead of the model.

Reading and decoding a frame's sensor files (LiDAR BIN/LAZ, camera JPEGs,
calibration) between forward passes leaves the accelerator idle for the whole
read. :func:`frame_loader` hands the frames to a ``torch.utils.data.DataLoader``
whose worker processes decode the next ``prefetch_factor`` batches each while
the model runs on the current one; on CUDA the batches come in page-locked
memory, so the host-to-device copy (``batch.to(device, non_blocking=True)``) is
asynchronous too.

The loader decides *where* frames are decoded, never *which* frames form a
batch: batches are consecutive chunks of the given frame order, each exactly
``DetectorBatch.join`` of :func:`~ceal_pipeline.detector.inputs.load_frame` of its frames
in this process. Results are
therefore identical to the bit with 0 and with N workers (tested). Loading draws
no random number from the caller's generators: the DataLoader's worker base
seed comes from a private generator, so the global torch RNG stream (training
dropout, seeded per epoch) is the same whether or not a loader was iterated.

A frame whose file cannot be read stops the run with the reader's own error,
which names the frame and the file; from a worker process torch re-raises it in
the caller with the same exception type, the worker's traceback prepended.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ceal_pipeline.detector.inputs import DetectorBatch, load_frame
from ceal_pipeline.frames.records import FrameRecord

#: Batches each worker decodes ahead of the model (torch's ``prefetch_factor``).
PREFETCH_BATCHES_PER_WORKER = 2

#: Most worker processes :func:`default_num_workers` proposes: decoding a frame
#: costs less than the model's pass over it, so more rarely pays for their memory.
MAX_DEFAULT_WORKERS = 4


def default_num_workers() -> int:
    """Worker processes for frame loading: ``min(4, usable CPU cores - 1)``, ``0`` on one core.

    One core stays with the process that drives the model. Cores are those this
    process may run on (its CPU affinity, e.g. a container's cpuset), not the host's.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(MAX_DEFAULT_WORKERS, cores - 1))


class FrameDataset(Dataset):
    """The frames as a map-style dataset: item ``i`` is frame ``i`` read into a one-frame batch.

    Args:
        frames: the frames; item indices follow this order.
        class_names: the detector's classes (frame labels are mapped by name).
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres; points outside are dropped.
        image_size: ``(height, width)`` pixels of the camera input, or ``None`` for LiDAR only.
        with_labels: also read ground-truth boxes and labels (training, evaluation).
    """

    def __init__(
        self,
        frames: Sequence[FrameRecord],
        *,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        image_size: tuple[int, int] | None = None,
        with_labels: bool = False,
    ) -> None:
        self.frames = list(frames)
        self.class_names = tuple(class_names)
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.with_labels = bool(with_labels)

    @classmethod
    def for_model(cls, frames: Sequence[FrameRecord], model, with_labels: bool = False) -> "FrameDataset":
        """The dataset of ``frames`` as ``model`` (a built detector) takes them."""
        return cls(
            frames,
            class_names=model.class_names,
            point_cloud_range=model.point_cloud_range,
            image_size=model.ceal_config["data"].get("image_size"),
            with_labels=with_labels,
        )

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> DetectorBatch:
        return load_frame(
            self.frames[index],
            class_names=self.class_names,
            point_cloud_range=self.point_cloud_range,
            image_size=self.image_size,
            with_labels=self.with_labels,
        )


class BatchOrder(Sampler[list[int]]):
    """Consecutive ``batch_size`` chunks of a frame order (the last one may be shorter).

    The order can be replaced between passes (:meth:`set_order`, e.g. each
    training epoch's permutation). The sampler runs in the caller's process, so
    a loader with persistent workers follows the new order on its next pass.

    ``repeats`` (one count >= 1 per frame, default 1 each) makes a pass visit
    frame ``i`` ``repeats[i]`` times: an order is then a permutation of the
    multiset ``np.repeat(range(n_frames), repeats)`` (``sum(repeats)`` entries),
    e.g. to oversample the frames bought in the latest round.

    ``batches`` (of :meth:`set_order`) cuts a pass short after its first
    ``batches`` batches, e.g. the last epoch of a training run counted in
    optimiser steps; the frames past them are neither yielded nor read.
    """

    def __init__(self, n_frames: int, batch_size: int, order: Sequence[int] | None = None, *,
                 repeats: Sequence[int] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 frame, got {batch_size}")
        self.n_frames = int(n_frames)
        self.batch_size = int(batch_size)
        self.repeats = check_repeats(repeats, self.n_frames)
        self.set_order(self.expanded() if order is None else order)

    def expanded(self) -> np.ndarray:
        """Every frame index as often as a pass visits it, ascending: ``np.repeat(range(n_frames), repeats)``."""
        return np.repeat(np.arange(self.n_frames), self.repeats)

    @property
    def pass_length(self) -> int:
        """Frames (with repeats) in one pass: ``sum(repeats)``."""
        return int(self.repeats.sum())

    def set_order(self, order: Sequence[int], *, batches: int | None = None) -> None:
        """Use ``order`` from the next pass on: a permutation of ``range(n_frames)``, or with
        ``repeats``, an order of indices into it holding frame ``i`` exactly ``repeats[i]`` times.

        ``batches``: yield only the first this many batches of the order (a partial pass);
        ``None`` = every batch."""
        order = np.asarray(order, dtype=np.int64)
        valid = (order.shape == (self.pass_length,) and (order.size == 0 or (order.min() >= 0
                 and order.max() < self.n_frames))
                 and np.array_equal(np.bincount(order, minlength=self.n_frames), self.repeats))
        if not valid:
            if np.all(self.repeats == 1):
                raise ValueError(f"a frame order must be a permutation of range({self.n_frames}), "
                                 f"got {order.tolist()}")
            raise ValueError(f"a frame order must hold each frame index i in range({self.n_frames}) exactly "
                             f"repeats[i] times ({self.pass_length} entries, repeats {self.repeats.tolist()}), "
                             f"got {order.tolist()}")
        full = -(-len(order) // self.batch_size)
        if batches is not None and (isinstance(batches, bool) or not isinstance(batches, (int, np.integer))
                                    or not 1 <= batches <= full):
            raise ValueError(f"batches must be a whole number in [1, {full}] (the batches of the order) "
                             f"or None for all of them, got {batches!r}")
        self.order = order
        self.batches = full if batches is None else int(batches)

    def __iter__(self) -> Iterator[list[int]]:
        for first in range(0, self.batches * self.batch_size, self.batch_size):
            yield self.order[first : first + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.batches


def check_repeats(repeats: Sequence[int] | None, n_frames: int) -> np.ndarray:
    """``repeats`` as an int array of ``n_frames`` counts >= 1 (``None``: one each); a clear ValueError otherwise."""
    if repeats is None:
        return np.ones(n_frames, dtype=np.int64)
    values = np.asarray(repeats)
    if values.ndim != 1 or len(values) != n_frames:
        raise ValueError(f"repeats must give one count per frame ({n_frames}), got {values.size} "
                         f"(shape {values.shape}); pass a list as long as the frames, or None for one pass each")
    if values.size and values.dtype.kind not in "iu":
        if values.dtype.kind != "f" or not np.all(np.isfinite(values) & (values == np.round(values))):
            raise ValueError(f"repeats must be whole numbers >= 1, got {values.tolist()}")
    values = values.astype(np.int64)
    bad = np.flatnonzero(values < 1)
    if bad.size:
        raise ValueError(f"repeats must be >= 1 for every frame (1 = once per pass; to leave a frame out, "
                         f"do not pass it), got {values[bad[:5]].tolist()} at frame indices {bad[:5].tolist()}")
    return values


def frame_loader(
    dataset: FrameDataset,
    *,
    batch_size: int | None = None,
    batch_order: BatchOrder | None = None,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    persistent_workers: bool = False,
) -> DataLoader:
    """A loader yielding :class:`DetectorBatch` es of ``dataset``, decoded ahead by worker processes.

    Args:
        dataset: the frames (see :class:`FrameDataset`).
        batch_size: frames per batch, in dataset order; or give ``batch_order``.
        batch_order: the batches to yield (a :class:`BatchOrder` the caller may reorder between passes).
        num_workers: worker processes decoding frames; ``None`` = :func:`default_num_workers`,
            ``0`` = decode in this process when a batch is requested. Never more than
            there are batches, and none for a single batch.
        device: where the batches will go; on CUDA they are pinned for an asynchronous copy.
        persistent_workers: keep the workers between passes over the loader (training
            epochs); pointless for a single pass.
    """
    if (batch_size is None) == (batch_order is None):
        raise ValueError("frame_loader needs exactly one of batch_size and batch_order")
    if batch_order is None:
        batch_order = BatchOrder(len(dataset), batch_size)
    if batch_order.n_frames != len(dataset):
        raise ValueError(f"batch order over {batch_order.n_frames} frames for a dataset of {len(dataset)}")
    workers = default_num_workers() if num_workers is None else int(num_workers)
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0 (0 = read frames in this process), got {num_workers}")
    # A single batch has nothing to overlap with: the model waits for it either
    # way, and a worker would only add its start-up (~0.1 s).
    workers = min(workers, len(batch_order)) if len(batch_order) > 1 else 0
    return DataLoader(
        dataset,
        batch_sampler=batch_order,
        collate_fn=DetectorBatch.join,
        num_workers=workers,
        prefetch_factor=PREFETCH_BATCHES_PER_WORKER if workers else None,
        persistent_workers=bool(persistent_workers and workers),
        pin_memory=torch.device(device).type == "cuda",
        # Seeds only the workers' base seed (nothing here is random); a private
        # generator keeps the caller's torch RNG stream untouched.
        generator=torch.Generator().manual_seed(0),
    )
