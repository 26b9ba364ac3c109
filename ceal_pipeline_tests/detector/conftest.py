"""Hand-made driving frames for detector tests: boxes filled with LiDAR points on a
ground plane, plus one forward-looking camera, written the way sources write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.frames.records import CameraRecord, FrameRecord

#: A camera at the LiDAR origin looking along +x: LiDAR (x fwd, y left, z up) -> camera (x right, y down, z fwd).
LIDAR2CAM = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=np.float64
)
IMAGE_W, IMAGE_H = 128, 64
CAM2IMG = np.array([[64.0, 0.0, IMAGE_W / 2], [0.0, 64.0, IMAGE_H / 2], [0.0, 0.0, 1.0]])

_SIZES = {0: (4.2, 1.8, 1.6), 1: (7.5, 2.5, 3.0), 2: (0.8, 0.8, 1.8), 3: (1.8, 0.7, 1.7)}


def _box_points(box: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    x, y, z, length, width, height, yaw = box
    local = rng.uniform(-0.5, 0.5, size=(n, 3)) * [length, width, height] + [0.0, 0.0, height / 2]
    c, s = np.cos(yaw), np.sin(yaw)
    world = np.column_stack([c * local[:, 0] - s * local[:, 1] + x, s * local[:, 0] + c * local[:, 1] + y,
                             local[:, 2] + z])
    return np.column_stack([world, np.full(n, 100.0)])


def write_frame(root: Path, index: int, rng: np.random.Generator, *, cameras: bool = True,
                n_objects: int = 6, labeled: bool = True) -> FrameRecord:
    """One frame: objects within 30 m, 120 points each, 2,000 ground points."""
    labels = rng.integers(0, 4, size=n_objects)
    boxes = []
    for label in labels:
        length, width, height = _SIZES[int(label)]
        boxes.append([rng.uniform(-30, 30), rng.uniform(-30, 30), -1.8, length, width, height,
                      rng.uniform(-np.pi, np.pi)])
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 7)
    ground = np.column_stack([rng.uniform(-38, 38, 2000), rng.uniform(-38, 38, 2000), np.full(2000, -1.8),
                              np.full(2000, 10.0)])
    points = np.concatenate([ground] + [_box_points(b, rng, 120) for b in boxes]).astype(np.float32)
    lidar_path = root / f"frame{index:04d}.bin"
    points.tofile(lidar_path)
    camera_records: tuple[CameraRecord, ...] = ()
    if cameras:
        from PIL import Image

        image_path = root / f"frame{index:04d}_front.png"
        Image.fromarray(rng.integers(0, 255, size=(IMAGE_H, IMAGE_W, 3), dtype=np.uint8)).save(image_path)
        camera_records = (CameraRecord(name="front", path=str(image_path), cam2img=CAM2IMG, lidar2cam=LIDAR2CAM,
                                       width=IMAGE_W, height=IMAGE_H),)
    return FrameRecord(
        frame_id=f"test-{index:04d}",
        sequence_id=f"seq-{index // 10}",
        timestamp=float(index),
        lidar_path=str(lidar_path),
        cameras=camera_records,
        boxes=boxes if labeled else None,
        labels=labels.astype(np.int64) if labeled else None,
    )


def make_frames(root: Path, n: int, seed: int = 0, **kwargs) -> list[FrameRecord]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    return [write_frame(root, i, rng, **kwargs) for i in range(n)]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[FrameRecord]:
    """Six labeled frames with one camera each."""
    return make_frames(tmp_path_factory.mktemp("frames"), 6)


@pytest.fixture(scope="module")
def tiny_detector():
    from ceal_pipeline.detector.builder import build_detector

    return build_detector("bevfusion_tiny", seed=0)
