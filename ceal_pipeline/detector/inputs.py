"""Turn :class:`~ceal_pipeline.frames.records.FrameRecord` lists into detector input tensors.

Points come from ``frames.points.load_points`` (``(P, 4)`` x, y, z, intensity);
images are resized to the config's ``image_size`` with their intrinsics scaled to
match, and normalised with ImageNet statistics (what ResNet expects). Boxes are
used unchanged: sources already give the LiDAR-frame bottom-centre convention.

:func:`load_frame` reads one frame into a one-frame :class:`DetectorBatch` and
:meth:`DetectorBatch.join` concatenates them (the collate of
:mod:`ceal_pipeline.detector.loader`, whose worker processes run the first step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ceal_pipeline.frames.records import FrameRecord

_IMAGE_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_IMAGE_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@dataclass
class DetectorBatch:
    """A batch of frames as tensors. Lists are per frame.

    ``points[b]`` ``(P_b, 4)``; ``images[b]`` ``(N_b, 3, H, W)`` normalised,
    ``cam2img[b]`` ``(N_b, 3, 3)`` for the resized images, ``lidar2cam[b]``
    ``(N_b, 4, 4)`` (all ``None`` without cameras); ``gt_boxes[b]`` ``(n_b, 7)``
    and ``gt_labels[b]`` ``(n_b,)`` detector class indices (``None`` if unlabeled).
    """

    frame_ids: list[str]
    points: list[Tensor]
    images: list[Tensor] | None = None
    cam2img: list[Tensor] | None = None
    lidar2cam: list[Tensor] | None = None
    gt_boxes: list[Tensor] | None = None
    gt_labels: list[Tensor] | None = None

    #: The per-frame tensor lists, in the order :meth:`join` and :meth:`map_tensors` visit them.
    TENSOR_FIELDS = ("points", "images", "cam2img", "lidar2cam", "gt_boxes", "gt_labels")

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> "DetectorBatch":
        """A copy with ``fn`` applied to every tensor (``None`` lists stay ``None``)."""
        return replace(self, **{
            name: None if getattr(self, name) is None else [fn(t) for t in getattr(self, name)]
            for name in self.TENSOR_FIELDS
        })

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "DetectorBatch":
        """The batch on ``device``; ``non_blocking`` overlaps the copy from pinned memory with GPU work."""
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "DetectorBatch":
        """The batch in page-locked host memory (called by the DataLoader's pin-memory thread on CUDA)."""
        return self.map_tensors(lambda t: t.pin_memory())

    @classmethod
    def join(cls, parts: Sequence["DetectorBatch"]) -> "DetectorBatch":
        """One batch holding the frames of ``parts`` in order (e.g. one-frame batches from :func:`load_frame`).

        A field is ``None`` in the result when it is ``None`` in the parts; parts
        must agree on which fields they carry (all with cameras/labels or none).
        """
        if not parts:
            raise ValueError("DetectorBatch.join needs at least one batch")
        joined = {}
        for name in cls.TENSOR_FIELDS:
            present = [getattr(part, name) is not None for part in parts]
            if any(present) and not all(present):
                raise ValueError(f"cannot join batches of frames {[p.frame_ids for p in parts]}: "
                                 f"only some carry {name!r}")
            joined[name] = [t for part in parts for t in getattr(part, name)] if all(present) else None
        return cls(frame_ids=[frame_id for part in parts for frame_id in part.frame_ids], **joined)


def _load_camera(frame: FrameRecord, camera, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    from PIL import Image

    try:
        with Image.open(camera.path) as img:
            rgb = img.convert("RGB")
            orig_w, orig_h = rgb.size
            resized = rgb.resize((image_size[1], image_size[0]), Image.BILINEAR)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"frame {frame.frame_id}: camera {camera.name!r} image {camera.path} cannot be read ({exc}); "
            "fix or re-export the image, or quarantine the frame in its source"
        ) from exc
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    image = (pixels - _IMAGE_MEAN) / _IMAGE_STD
    scale = torch.diag(torch.tensor([image_size[1] / orig_w, image_size[0] / orig_h, 1.0], dtype=torch.float64))
    cam2img = scale @ torch.as_tensor(np.asarray(camera.cam2img, dtype=np.float64)).reshape(3, 3)
    return image, cam2img.float()


def ground_truth(frame: FrameRecord, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The frame's boxes ``(n, 7)`` float32 and labels ``(n,)`` as indices into the detector's ``class_names``.

    Labels are mapped by class name; boxes of classes the detector does not have
    are an error naming the frame (map them onto detector classes in the source).
    """
    if not frame.is_labeled:
        raise ValueError(f"frame {frame.frame_id} is unlabeled: only labeled frames can be trained/evaluated on")
    lookup = {name: i for i, name in enumerate(class_names)}
    labels = np.asarray(frame.labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(frame.class_names)):
        raise ValueError(f"frame {frame.frame_id}: label outside its {len(frame.class_names)} class_names")
    names = [frame.class_names[int(label)] for label in labels]
    unknown = sorted({name for name in names if name not in lookup})
    if unknown:
        raise ValueError(
            f"frame {frame.frame_id}: classes {unknown} are not detector classes {list(class_names)}; "
            "map them onto detector classes in the frame source"
        )
    mapped = np.array([lookup[name] for name in names], dtype=np.int64)
    return np.asarray(frame.boxes, dtype=np.float32).reshape(-1, 7), mapped


def load_frame(
    frame: FrameRecord,
    *,
    class_names: Sequence[str],
    point_cloud_range: Sequence[float],
    image_size: tuple[int, int] | None = None,
    with_labels: bool = False,
) -> DetectorBatch:
    """Read one frame's sensor files into a one-frame :class:`DetectorBatch` (CPU tensors).

    Args:
        frame: the frame to read.
        class_names: the detector's classes; frame labels are mapped by name.
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres; points outside are dropped here.
        image_size: ``(height, width)`` pixels to resize camera images to, or ``None``
            for a LiDAR-only detector (cameras are then not read at all).
        with_labels: also return ground-truth boxes/labels (the frame must be labeled).

    Raises:
        :class:`~ceal_pipeline.frames.points.LidarReadError` or ``FileNotFoundError``
        naming the frame and the file that cannot be read; ``ValueError`` naming
        the frame when it lacks cameras or labels the detector needs.
    """
    from ceal_pipeline.frames.points import load_points

    x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
    pts = np.asarray(load_points(frame), dtype=np.float32)
    inside = (
        (pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)
        & (pts[:, 2] >= z0) & (pts[:, 2] < z1)
    )
    batch = DetectorBatch(frame_ids=[frame.frame_id],
                          points=[torch.from_numpy(np.ascontiguousarray(pts[inside, :4]))])
    if image_size is not None:
        if not frame.cameras:
            raise ValueError(
                f"frame {frame.frame_id} has no camera images but the detector fuses cameras: add the "
                "cameras to its source or use the LiDAR-only config models/pointpillars_lite.py"
            )
        loaded = [_load_camera(frame, camera, image_size) for camera in frame.cameras]
        batch.images = [torch.stack([img for img, _ in loaded])]
        batch.cam2img = [torch.stack([k for _, k in loaded])]
        batch.lidar2cam = [torch.stack([
            torch.as_tensor(np.asarray(c.lidar2cam, dtype=np.float32)).reshape(4, 4) for c in frame.cameras
        ])]
    if with_labels:
        frame_boxes, frame_labels = ground_truth(frame, class_names)
        batch.gt_boxes = [torch.from_numpy(frame_boxes)]
        batch.gt_labels = [torch.from_numpy(frame_labels)]
    return batch
