"""nuScenes-style mmdet3d info files at fleet scale, for the catalog benchmark.

Each frame looks like an entry of mmdet3d's ``nuscenes_infos_*.pkl``: a random
32-hex token, a timestamp, ``ego2global``, ``lidar_points`` (5 features,
``lidar2ego``), 6 cameras each with ``cam2img``, ``cam2ego``, ``lidar2cam``, a
token and a timestamp, and ~40 instances (``bbox_3d`` with a centre origin,
``bbox_label_3d`` over nuScenes' 10 classes, velocity, point counts). Every
number is its own Python object, as in a real info file, so unpickling costs
what it costs on real data. The files the entries name are shared: 64 small
LiDAR files and one image per camera, so the benchmark measures the catalog,
not the disk.

Frames are written ``frames_per_file`` to an info file, the way fleet data
arrives (one file per upload batch). Generating ~10^3 Python objects per frame
costs more than parsing them, so :func:`write_fleet_infos` generates one block
of ``frames_per_file`` entries and writes every further file as a byte copy of
its pickle with the block number in its ids (:func:`fleet_token`: ids, camera
tokens and scene tokens start with ``<block:07x>b``; the same-length
substitution keeps the pickle valid). Each file is still a complete info file
with its own frame ids that the ingest unpickles and parses in full; only the
numbers repeat from file to file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ceal_pipeline.atomic_files import atomic_write_bytes

CAMERAS = ("CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT")
NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
LIDAR_FILES = 64
FRAMES_PER_SCENE = 40


def write_shared_files(root: Path) -> None:
    """The LiDAR and image files every entry points to (tiny, valid)."""
    from PIL import Image

    (root / "samples" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(LIDAR_FILES):
        rng.uniform(-50, 50, (128, 5)).astype(np.float32).tofile(root / "samples" / "LIDAR_TOP" / f"log{k:02d}.bin")
    for camera in CAMERAS:
        (root / "samples" / camera).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (160, 90)).save(root / "samples" / camera / "shared.jpg", quality=80)


def frame_tokens(seed: int, start: int, stop: int) -> list[str]:
    """The tokens (frame ids) of entries ``start..stop`` of a benchmark dataset."""
    rng = np.random.default_rng([seed, 7])
    rng.bit_generator.advance(2 * start)  # two 64-bit draws per token
    words = rng.integers(0, 2**63, size=(stop - start, 2), dtype=np.int64)
    return [f"{a:016x}{b:016x}" for a, b in words.tolist()]


def fleet_token(seed: int, index: int, frames_per_file: int) -> str:
    """The frame id of entry ``index`` of a fleet dataset written by :func:`write_fleet_infos`."""
    block, k = divmod(index, frames_per_file)
    return f"{block:07x}b{frame_tokens(seed, k, k + 1)[0][:24]}"


def _entries(seed: int, start: int, stop: int, boxes_per_frame: int, tokens: list[str] | None = None,
             scene_prefix: str = "scene") -> list[dict]:
    n = stop - start
    rng = np.random.default_rng([seed, start])
    tokens = tokens or frame_tokens(seed, start, stop)
    counts = rng.integers(max(boxes_per_frame - 10, 0), boxes_per_frame + 11, n)
    total = int(counts.sum())
    centres = np.column_stack([rng.uniform(-50, 50, (total, 2)), rng.uniform(-1, 1, total)])
    sizes = rng.uniform(0.5, 5.0, (total, 3))
    bboxes = np.column_stack([centres, sizes, rng.uniform(-np.pi, np.pi, total)]).tolist()
    labels = rng.integers(-1, len(NUSCENES_CLASSES), total).tolist()
    velocities = rng.normal(0, 2, (total, 2)).tolist()
    points = rng.integers(0, 500, total).tolist()
    instances = [{"bbox_label": label, "bbox_3d": box, "bbox_3d_isvalid": True, "bbox_label_3d": label,
                  "num_lidar_pts": p, "num_radar_pts": 0, "velocity": v}
                 for box, label, v, p in zip(bboxes, labels, velocities, points)]
    offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()

    def poses() -> list:
        pose = np.tile(np.eye(4), (n, 1, 1))
        pose[:, :3, 3] = rng.normal(0, 100, (n, 3))
        return pose.tolist()

    intrinsics = np.tile(np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]), (n, 1, 1))
    cam2img = {c: (intrinsics + rng.normal(0, 0.01, (n, 3, 3))).tolist() for c in CAMERAS}
    cam2ego = {c: poses() for c in CAMERAS}
    lidar2cam = {c: poses() for c in CAMERAS}
    ego2global, lidar2ego = poses(), poses()
    timestamps = (1.5e9 + (start + np.arange(n)) * 0.5).tolist()
    entries = []
    for i in range(n):
        index = start + i
        log = (index // FRAMES_PER_SCENE) % LIDAR_FILES
        t = timestamps[i]
        entries.append({
            "sample_idx": index, "token": tokens[i], "timestamp": t, "ego2global": ego2global[i],
            "scene_token": f"{scene_prefix}-{index // FRAMES_PER_SCENE:07d}",
            "lidar_points": {"num_pts_feats": 5, "lidar_path": f"samples/LIDAR_TOP/log{log:02d}.bin",
                             "lidar2ego": lidar2ego[i]},
            "images": {c: {"img_path": f"samples/{c}/shared.jpg", "cam2img": cam2img[c][i],
                           "cam2ego": cam2ego[c][i], "sample_data_token": f"{tokens[i][:24]}{k:08d}",
                           "timestamp": t, "lidar2cam": lidar2cam[c][i]} for k, c in enumerate(CAMERAS)},
            "instances": instances[offsets[i]:offsets[i + 1]],
        })
    return entries


def _info_bytes(entries: list[dict]) -> bytes:
    metainfo = {"categories": {name: i for i, name in enumerate(NUSCENES_CLASSES)}, "dataset": "nuscenes",
                "version": "v1.0-trainval", "info_version": "1.1"}
    return pickle.dumps({"metainfo": metainfo, "data_list": entries}, protocol=pickle.HIGHEST_PROTOCOL)


def write_info_file(path: Path, seed: int, start: int, stop: int, boxes_per_frame: int = 40) -> Path:
    """Entries ``start..stop`` (ids :func:`frame_tokens`) as one info file at ``path`` (atomic)."""
    atomic_write_bytes(path, _info_bytes(_entries(seed, start, stop, boxes_per_frame)))
    return path


def write_fleet_infos(root: Path, n_frames: int, *, frames_per_file: int, seed: int = 0,
                      name: str = "nuscenes_infos_train", boxes_per_frame: int = 40, progress=None) -> list[Path]:
    """Entries ``0..n_frames`` (ids :func:`fleet_token`) as info files of ``frames_per_file`` entries."""
    root.mkdir(parents=True, exist_ok=True)
    n_files = -(-n_frames // frames_per_file)
    marker = fleet_token(seed, 0, frames_per_file)[:8]
    template = None
    paths = []
    for block in range(n_files):
        start, stop = block * frames_per_file, min((block + 1) * frames_per_file, n_frames)
        if template is None or stop - start < frames_per_file:
            tokens = [fleet_token(seed, i, frames_per_file) for i in range(start, stop)]
            data = _info_bytes(_entries(seed, 0, stop - start, boxes_per_frame, tokens, f"{tokens[0][:8]}-scene"))
            if template is None and stop - start == frames_per_file:
                template, occurrences = data, data.count(marker.encode())
        else:
            data = template.replace(marker.encode(), fleet_token(seed, start, frames_per_file)[:8].encode())
            if data.count(fleet_token(seed, start, frames_per_file)[:8].encode()) != occurrences:
                raise RuntimeError("block marker collided with other bytes of the template pickle")
        paths.append(root / f"{name}-{block:05d}.pkl")
        atomic_write_bytes(paths[-1], data)
        if progress:
            progress(len(paths), n_files)
    return paths
