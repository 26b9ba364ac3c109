"""A small dataset in KITTI's raw layout, for running mmdet3d's own converters on it.

``training/{calib,label_2,velodyne,image_2}/<idx>.*`` and ``ImageSets/*.txt``, as
the KITTI object benchmark ships them. The calibration is KITTI-like but not the
ideal axis permutation (the LiDAR is turned by a fraction of a degree against
the camera, ``R0_rect`` rectifies by another), so a reader that ignores either
matrix gets boxes measurably off. Objects are placed in the LiDAR frame, their
LiDAR points sampled on their surfaces (just inside the box), and written to
``label_2`` in the rectified camera frame: bottom centre, ``h w l``, ``ry``.

The same geometry also serves the KITTI-like layout of mmdet3d's older Waymo
converter (:func:`write_waymo_kitti_layout`), which mmdet3d's
``create_waymo_info_file`` reads with five cameras, poses and timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.frames.box_conventions import box_corners

IMAGE_SIZE = (1242, 375)  # width, height
P2 = np.array([[721.54, 0.0, 609.56, 44.857], [0.0, 721.54, 172.85, 0.2164], [0.0, 0.0, 1.0, 0.002746]])


def _rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


#: LiDAR -> unrectified camera: the axis permutation turned by ~0.6 degree, KITTI's offsets.
TR_VELO_TO_CAM = np.eye(4)
TR_VELO_TO_CAM[:3, :3] = (_rotation("y", 0.008) @ _rotation("x", -0.006)
                          @ np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]) @ _rotation("z", 0.007))
TR_VELO_TO_CAM[:3, 3] = (-0.0041, -0.0763, -0.2718)
R0_RECT = np.eye(4)
R0_RECT[:3, :3] = _rotation("x", 0.004) @ _rotation("y", -0.0085) @ _rotation("z", 0.0101)


@dataclass(frozen=True)
class LabeledObject:
    """A KITTI object in the LiDAR frame: bottom-centre ``x y z l w h yaw`` (metres, radians)."""

    kind: str
    box: tuple[float, float, float, float, float, float, float]


#: Per frame: cars, a cyclist, a pedestrian and a van at several headings, all in the camera's view.
FRAMES: tuple[tuple[LabeledObject, ...], ...] = (
    (LabeledObject("Car", (14.0, 2.5, -1.7, 4.2, 1.8, 1.5, 0.4)),
     LabeledObject("Cyclist", (9.0, -2.0, -1.7, 1.8, 0.6, 1.7, -1.1)),
     LabeledObject("Pedestrian", (7.5, 1.2, -1.7, 0.9, 0.5, 1.75, 2.3))),
    (LabeledObject("Car", (20.0, -3.0, -1.65, 4.5, 1.9, 1.55, -2.6)),
     LabeledObject("Van", (11.0, 3.5, -1.7, 5.0, 2.0, 2.2, 1.2))),
    (LabeledObject("Car", (25.0, 0.5, -1.6, 3.9, 1.7, 1.45, 3.0)),
     LabeledObject("Pedestrian", (6.0, -1.0, -1.7, 0.8, 0.45, 1.7, -0.4))),
)


def lidar_to_camera_box(box, lidar2cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A LiDAR bottom-centre box as KITTI writes it: ``(location, (h, w, l), ry)``.

    ``location`` is the bottom centre in the rectified camera frame; ``ry`` the
    rotation about camera +y that turns camera +x onto the box's heading as it is
    seen in the camera frame (the heading vector moved with the full rotation).
    """
    x, y, z, length, width, height, yaw = box
    location = (lidar2cam @ np.array([x, y, z, 1.0]))[:3]
    heading = lidar2cam[:3, :3] @ np.array([np.cos(yaw), np.sin(yaw), 0.0])
    ry = float(np.arctan2(-heading[2], heading[0]))
    return location, np.array([height, width, length]), ry


def surface_points(box, n: int, rng: np.random.Generator, shrink: float = 0.97) -> np.ndarray:
    """``(n, 4)`` float32 points on the surface of a box shrunk by ``shrink`` (so strictly inside it)."""
    x, y, z, length, width, height, yaw = box
    half = np.array([length, width, height]) * shrink / 2.0
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]]) * 2  # faces normal to x, y, z
    axis = rng.choice(3, size=n, p=areas / areas.sum())
    local = rng.uniform(-1.0, 1.0, size=(n, 3)) * half
    side = rng.choice([-1.0, 1.0], size=n)
    local[np.arange(n), axis] = side * half[axis]
    cos, sin = np.cos(yaw), np.sin(yaw)
    world = np.column_stack([x + local[:, 0] * cos - local[:, 1] * sin, y + local[:, 0] * sin + local[:, 1] * cos,
                             z + height / 2.0 + local[:, 2]])
    return np.column_stack([world, rng.uniform(0, 1, n)]).astype(np.float32)


def _matrix_line(name: str, matrix: np.ndarray) -> str:
    return f"{name}: " + " ".join(f"{v:.12e}" for v in np.asarray(matrix).reshape(-1)) + "\n"


def _image_box(corners_lidar: np.ndarray, lidar2cam: np.ndarray, projection: np.ndarray) -> list[float]:
    cam = corners_lidar @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    uvw = np.column_stack([cam, np.ones(len(cam))]) @ projection.T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    width, height = IMAGE_SIZE
    return [float(np.clip(u.min(), 0, width - 1)), float(np.clip(v.min(), 0, height - 1)),
            float(np.clip(u.max(), 0, width - 1)), float(np.clip(v.max(), 0, height - 1))]


def _write_png(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), 90, np.uint8)).save(path)


def _label_lines(objects, lidar2cam: np.ndarray, projection: np.ndarray) -> list[str]:
    lines = []
    for obj in objects:
        location, dims, ry = lidar_to_camera_box(obj.box, lidar2cam)
        x1, y1, x2, y2 = _image_box(box_corners(np.array([obj.box]))[0], lidar2cam, projection)
        alpha = ry - np.arctan2(location[0], location[2])
        values = [0.0, 0, alpha, x1, y1, x2, y2, *dims, *location, ry]
        lines.append(obj.kind + " " + " ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values))
    lines.append("DontCare -1 -1 -10 500.0 170.0 520.0 190.0 -1 -1 -1 -1000 -1000 -1000 -10")
    return lines


def frame_points(objects, seed: int) -> np.ndarray:
    """The frame's cloud: points on every object's surface plus ground points in front."""
    rng = np.random.default_rng(seed)
    clouds = [surface_points(obj.box, 400, rng) for obj in objects]
    ground = np.column_stack([rng.uniform(4, 40, 600), rng.uniform(-8, 8, 600), np.full(600, -1.73),
                              rng.uniform(0, 1, 600)]).astype(np.float32)
    return np.concatenate([*clouds, ground])


def write_kitti_raw(root: Path, frames=FRAMES, val: tuple[int, ...] = (2,)) -> Path:
    """Write KITTI's raw layout under ``root``; frames listed in ``val`` go to ``ImageSets/val.txt``."""
    training = root / "training"
    for folder in ("calib", "label_2", "velodyne", "image_2"):
        (training / folder).mkdir(parents=True, exist_ok=True)
    (root / "testing").mkdir(exist_ok=True)
    lidar2cam = R0_RECT @ TR_VELO_TO_CAM
    for index, objects in enumerate(frames):
        name = f"{index:06d}"
        p0 = P2.copy()
        p0[:, 3] = 0.0
        calib = (_matrix_line("P0", p0) + _matrix_line("P1", p0) + _matrix_line("P2", P2) + _matrix_line("P3", P2)
                 + _matrix_line("R0_rect", R0_RECT[:3, :3]) + _matrix_line("Tr_velo_to_cam", TR_VELO_TO_CAM[:3])
                 + _matrix_line("Tr_imu_to_velo", np.eye(4)[:3]))
        (training / "calib" / f"{name}.txt").write_text(calib)
        (training / "label_2" / f"{name}.txt").write_text("\n".join(_label_lines(objects, lidar2cam, P2)) + "\n")
        frame_points(objects, seed=index).tofile(training / "velodyne" / f"{name}.bin")
        _write_png(training / "image_2" / f"{name}.png")
    (root / "ImageSets").mkdir(exist_ok=True)
    train = [i for i in range(len(frames)) if i not in val]
    (root / "ImageSets" / "train.txt").write_text("".join(f"{i:06d}\n" for i in train))
    (root / "ImageSets" / "val.txt").write_text("".join(f"{i:06d}\n" for i in val))
    (root / "ImageSets" / "test.txt").write_text("")
    return root


def long_axis_yaw(points: np.ndarray) -> float:
    """The direction (radians, modulo pi) of the largest spread of ``points`` in the ground plane."""
    xy = points[:, :2] - points[:, :2].mean(axis=0)
    _, vectors = np.linalg.eigh(xy.T @ xy)
    major = vectors[:, -1]
    return float(np.arctan2(major[1], major[0]))


def axis_difference(a: float, b: float) -> float:
    """Angle between two undirected axes, radians in ``[0, pi/2]``."""
    d = (a - b) % np.pi
    return float(min(d, np.pi - d))


def write_waymo_kitti_layout(root: Path, frames=FRAMES, prefix: int = 1, file_index: int = 3,
                             start_timestamp_us: int = 1550083467346370) -> list[int]:
    """Write the KITTI-like layout mmdet3d's older Waymo converter produced (and ``create_waymo_info_file``
    reads): 7-digit ids ``prefix + file + frame``, five cameras, six point features, poses and
    microsecond timestamps. Returns the frame ids; all go to ``ImageSets/train.txt``."""
    training = root / "training"
    for folder in ("calib", "label_all", "cam_sync_label_all", "velodyne", "pose", "timestamp",
                   *(f"image_{i}" for i in range(5))):
        (training / folder).mkdir(parents=True, exist_ok=True)
    lidar2cam = R0_RECT @ TR_VELO_TO_CAM
    ids = []
    for index, objects in enumerate(frames):
        frame_id = int(f"{prefix}{file_index:03d}{index:03d}")
        ids.append(frame_id)
        name = str(frame_id)
        calib = "".join(_matrix_line(f"P{i}", P2) for i in range(5)) + _matrix_line("R0_rect", R0_RECT[:3, :3])
        calib += "".join(_matrix_line(f"Tr_velo_to_cam_{i}", TR_VELO_TO_CAM[:3]) for i in range(5))
        (training / "calib" / f"{name}.txt").write_text(calib)
        labels = [line + " 0" for line in _label_lines(objects, lidar2cam, P2)[:-1]]  # camera_id 0, no DontCare
        for folder in ("label_all", "cam_sync_label_all"):
            (training / folder / f"{name}.txt").write_text("\n".join(labels) + "\n")
        cloud = frame_points(objects, seed=index)
        np.column_stack([cloud, np.zeros((len(cloud), 2), np.float32)]).astype(np.float32).tofile(
            training / "velodyne" / f"{name}.bin")
        np.savetxt(training / "pose" / f"{name}.txt", np.eye(4))
        (training / "timestamp" / f"{name}.txt").write_text(str(start_timestamp_us + 100000 * index))
        for camera in range(5):
            from PIL import Image

            Image.fromarray(np.full((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), 90, np.uint8)).save(
                training / f"image_{camera}" / f"{name}.jpg")
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "ImageSets" / "val.txt").write_text("")
    (root / "ImageSets" / "test.txt").write_text("")
    return ids
