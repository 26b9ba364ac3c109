"""Frames read into one detector batch in this process: the reference the loader is held to."""

from __future__ import annotations

from collections.abc import Sequence

from ceal_pipeline.detector.inputs import DetectorBatch, load_frame
from ceal_pipeline.frames.records import FrameRecord


def load_batch(
    frames: Sequence[FrameRecord],
    *,
    class_names: Sequence[str],
    point_cloud_range: Sequence[float],
    image_size: tuple[int, int] | None = None,
    with_labels: bool = False,
) -> DetectorBatch:
    """Read the frames' sensor files, in this process, into one :class:`DetectorBatch` (CPU tensors);
    the arguments are those of :func:`load_frame`, frames keep their order."""
    return DetectorBatch.join([
        load_frame(frame, class_names=class_names, point_cloud_range=point_cloud_range, image_size=image_size,
                   with_labels=with_labels)
        for frame in frames
    ])
