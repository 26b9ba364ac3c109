"""Turn :class:`~ceal_pipeline.frames.records.FrameRecord` lists into detector input tensors.

Points come from ``frames.points.load_points`` (``(P, 4)`` x, y, z, intensity);
images are resized to the config's ``image_size`` with their intrinsics scaled to
match, and normalised with ImageNet statistics (what ResNet expects). Boxes are
used unchanged: sources already give the LiDAR-frame bottom-centre convention.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

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

    def to(self, device: torch.device | str) -> "DetectorBatch":
        def move(tensors):
            return None if tensors is None else [t.to(device) for t in tensors]

        return replace(
            self,
            points=move(self.points),
            images=move(self.images),
            cam2img=move(self.cam2img),
            lidar2cam=move(self.lidar2cam),
            gt_boxes=move(self.gt_boxes),
            gt_labels=move(self.gt_labels),
        )


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


def load_batch(
    frames: Sequence[FrameRecord],
    *,
    class_names: Sequence[str],
    point_cloud_range: Sequence[float],
    image_size: tuple[int, int] | None = None,
    with_labels: bool = False,
) -> DetectorBatch:
    """Read the frames' sensor files into a :class:`DetectorBatch` (CPU tensors).

    Args:
        frames: the frames, in batch order.
        class_names: the detector's classes; frame labels are mapped by name.
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres; points outside are dropped here.
        image_size: ``(height, width)`` pixels to resize camera images to, or ``None``
            for a LiDAR-only detector (cameras are then not read at all).
        with_labels: also return ground-truth boxes/labels (every frame must be labeled).
    """
    from ceal_pipeline.frames.points import load_points

    x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
    points, images, cam2imgs, lidar2cams, boxes, labels = [], [], [], [], [], []
    for frame in frames:
        pts = np.asarray(load_points(frame), dtype=np.float32)
        inside = (
            (pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)
            & (pts[:, 2] >= z0) & (pts[:, 2] < z1)
        )
        points.append(torch.from_numpy(np.ascontiguousarray(pts[inside, :4])))
        if image_size is not None:
            if not frame.cameras:
                raise ValueError(
                    f"frame {frame.frame_id} has no camera images but the detector fuses cameras: add the "
                    "cameras to its source or use the LiDAR-only config models/pointpillars_lite.py"
                )
            loaded = [_load_camera(frame, camera, image_size) for camera in frame.cameras]
            images.append(torch.stack([img for img, _ in loaded]))
            cam2imgs.append(torch.stack([k for _, k in loaded]))
            lidar2cams.append(torch.stack([
                torch.as_tensor(np.asarray(c.lidar2cam, dtype=np.float32)).reshape(4, 4) for c in frame.cameras
            ]))
        if with_labels:
            frame_boxes, frame_labels = ground_truth(frame, class_names)
            boxes.append(torch.from_numpy(frame_boxes))
            labels.append(torch.from_numpy(frame_labels))
    return DetectorBatch(
        frame_ids=[f.frame_id for f in frames],
        points=points,
        images=images if image_size is not None else None,
        cam2img=cam2imgs if image_size is not None else None,
        lidar2cam=lidar2cams if image_size is not None else None,
        gt_boxes=boxes if with_labels else None,
        gt_labels=labels if with_labels else None,
    )
