"""Pinhole cameras for the synthetic generator, rendering cuboid parts with PIL.

Each camera has the same intrinsics model real infos carry (``cam2img`` 3x3)
and a ``lidar2cam`` extrinsic; images are drawn back to front (painter's
algorithm, exact for the non-intersecting convex parts used here) over a
precomputed sky-and-road background, shaded by a fixed sun, darkened with
distance haze, and given sensor noise, much more of it at night.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ceal_pipeline.frames.box_conventions import box_corners
from ceal_pipeline.frames.synthetic.config import SyntheticConfig

#: Corner indices of the six faces of :func:`box_corners` boxes.
_FACES = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
_SUN = np.array([0.4, 0.3, 0.87]) / np.linalg.norm([0.4, 0.3, 0.87])
_NEAR = 0.2  # metres: faces are clipped at this depth before projection


@dataclass(frozen=True)
class SyntheticCamera:
    """A camera mounted on the ego: ``name``, ``cam2img`` (3x3 px), ``lidar2cam`` (4x4)."""

    name: str
    cam2img: np.ndarray
    lidar2cam: np.ndarray
    width: int
    height: int
    cam2ego: np.ndarray  # the ego frame is the LiDAR frame here


def make_cameras(config: SyntheticConfig) -> tuple[SyntheticCamera, ...]:
    """CAM_FRONT and CAM_BACK, 1.6 m above the ground, looking along -/+ x."""
    focal = (config.camera_width / 2) / np.tan(np.deg2rad(config.camera_hfov_deg) / 2)
    cam2img = np.array([[focal, 0.0, config.camera_width / 2], [0.0, focal, config.camera_height / 2],
                        [0.0, 0.0, 1.0]])
    cameras = []
    for name, yaw, x in (("CAM_FRONT", 0.0, 1.0), ("CAM_BACK", np.pi, -1.0)):
        # camera axes in the LiDAR frame: x right, y down, z forward
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        rotation = np.stack([right, down, forward])  # rows: LiDAR -> camera
        position = np.array([x, 0.0, 1.6 - config.lidar_height_m])
        lidar2cam = np.eye(4)
        lidar2cam[:3, :3] = rotation
        lidar2cam[:3, 3] = -rotation @ position
        cameras.append(SyntheticCamera(name, cam2img, lidar2cam, config.camera_width, config.camera_height,
                                       np.linalg.inv(lidar2cam)))
    return tuple(cameras)


def background(camera: SyntheticCamera, night: bool, height_above_ground: float = 1.6) -> np.ndarray:
    """``(H, W, 3)`` float sky gradient above the horizon, road fading into haze below."""
    rows = (np.arange(camera.height) + 0.5 - camera.cam2img[1, 2]) / camera.cam2img[1, 1]  # tan(angle below)
    with np.errstate(divide="ignore"):
        distance = np.where(rows > 0, height_above_ground / rows, np.inf)
    haze = 1.0 - np.exp(-distance / 80.0)
    road = np.array([70.0, 70.0, 75.0])
    sky_top, sky_horizon = np.array([70.0, 120.0, 200.0]), np.array([180.0, 200.0, 220.0])
    up = np.clip(-rows, 0.0, 1.0)[:, None]
    sky = sky_horizon * (1 - up) + sky_top * up
    ground = road * (1 - haze[:, None]) + sky_horizon * haze[:, None]
    column = np.where((rows > 0)[:, None], ground, sky)
    if night:
        column = column * np.array([0.12, 0.12, 0.18])
    return np.repeat(column[:, None, :], camera.width, axis=1)


def _clip_near(polygon: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon to depth >= _NEAR."""
    out = []
    for i in range(len(polygon)):
        a, b = polygon[i], polygon[(i + 1) % len(polygon)]
        a_in, b_in = a[2] >= _NEAR, b[2] >= _NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            s = (_NEAR - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.asarray(out).reshape(-1, 3)


def render(camera: SyntheticCamera, base: np.ndarray, parts: np.ndarray, colors: np.ndarray, night: bool,
           noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3)`` uint8 image of the parts (LiDAR frame) seen by ``camera``."""
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if len(parts):
        corners = box_corners(parts)  # (M, 8, 3) LiDAR frame
        cam = corners @ camera.lidar2cam[:3, :3].T + camera.lidar2cam[:3, 3]
        depth = cam[..., 2]
        centre = cam.mean(axis=1)
        in_front = depth.max(axis=1) > _NEAR
        with np.errstate(divide="ignore", invalid="ignore"):
            u = camera.cam2img[0, 0] * cam[..., 0] / np.maximum(depth, _NEAR) + camera.cam2img[0, 2]
        # a part entirely left or right of the image (all corners in front) is skipped
        visible = in_front & ~((depth > _NEAR).all(1) & ((u.max(1) < 0) | (u.min(1) > camera.width)))
        face_centres = cam[:, _FACES].mean(axis=2)  # (M, 6, 3)
        normals = face_centres - centre[:, None, :]
        facing = (normals * face_centres).sum(-1) < 0  # the face looks towards the camera
        normals_lidar = normals @ camera.lidar2cam[:3, :3]  # back to the LiDAR frame for the sun
        lit = np.clip((normals_lidar / (np.linalg.norm(normals_lidar, axis=-1, keepdims=True) + 1e-9)) @ _SUN, 0, 1)
        shade = 0.45 + 0.55 * lit
        distance = np.linalg.norm(centre, axis=1)
        haze = 1.0 - np.exp(-distance / 80.0)
        fx, fy = camera.cam2img[0, 0], camera.cam2img[1, 1]
        cx, cy = camera.cam2img[0, 2], camera.cam2img[1, 2]
        order = np.flatnonzero(visible)[np.argsort(-distance[visible], kind="stable")]
        part_idx, face_idx = np.nonzero(facing[order])  # row-major: far parts first
        part_idx = order[part_idx]
        polygons = cam[part_idx[:, None], _FACES[face_idx]]  # (Q, 4, 3)
        needs_clip = (polygons[..., 2] < _NEAR).any(axis=1)
        depth_safe = np.maximum(polygons[..., 2], _NEAR)
        projected = np.stack([fx * polygons[..., 0] / depth_safe + cx, fy * polygons[..., 1] / depth_safe + cy], -1)
        fog = np.array([180.0, 200.0, 220.0]) * (0.15 if night else 1.0)
        light = 0.22 if night else 1.0
        h = haze[part_idx, None]
        fills = np.clip(colors[part_idx] * (shade[part_idx, face_idx] * light)[:, None] * (1 - h) + fog * h, 0, 255)
        fills = [tuple(c) for c in fills.astype(np.int64).tolist()]
        projected_list = projected.tolist()
        for q in range(len(part_idx)):
            if needs_clip[q]:
                clipped = _clip_near(polygons[q])
                if len(clipped) < 3:
                    continue
                xy = np.column_stack([fx * clipped[:, 0] / clipped[:, 2] + cx, fy * clipped[:, 1] / clipped[:, 2] + cy])
                draw.polygon([tuple(p) for p in xy.tolist()], fill=fills[q])
            else:
                draw.polygon([tuple(p) for p in projected_list[q]], fill=fills[q])
    pixels = np.asarray(image, dtype=np.int16)
    # Sensor noise: a random shift of a per-camera noise field is as good as fresh
    # noise to the detector and ~10x cheaper than drawing 32k normals per image.
    field = _noise_field(camera.height, camera.width)
    shift = rng.integers(0, camera.height * camera.width)
    noise = np.roll(field, shift).reshape(camera.height, camera.width, 1)
    return np.clip(pixels + (noise * noise_sigma).astype(np.int16), 0, 255).astype(np.uint8)


_NOISE_FIELDS: dict[tuple[int, int], np.ndarray] = {}


def _noise_field(height: int, width: int) -> np.ndarray:
    """A fixed unit-variance noise field (seeded, so images stay reproducible)."""
    key = (height, width)
    if key not in _NOISE_FIELDS:
        _NOISE_FIELDS[key] = np.random.default_rng(12345).standard_normal(height * width).astype(np.float32)
    return _NOISE_FIELDS[key]
