"""Writing a synthetic dataset in the mmdet3d v1.x info layout.

``root/`` receives ``lidar/<frame>.bin`` (float32 x, y, z, intensity),
``camera/<CAM>/<frame>.jpg``, the info file ``ceal_synthetic_infos.pkl``
(``{'metainfo', 'data_list'}``, paths relative to ``root``) and
``manifest.json`` with the parameters. The manifest is written last and
atomically, so an interrupted generation is redone, and a completed one with
the same parameters is reused as it is.

Another process may be reading the dataset while it is regenerated. Every file
is written under a temporary name and renamed into place, so a reader never
opens a half-written file; a generation holds an exclusive lock on
``root/.generate.lock`` and the readers of the source (``read_frames``, the
catalog ingest) a shared one (:func:`dataset_lock`), so a dataset being read
is never regenerated or cleaned up under its reader: the generator refuses
with :class:`SyntheticDatasetBusy` instead. Files of the previous generation
that the new one does not name are removed only after the new manifest is
committed, under the exclusive lock.

The generator only ever writes into a folder it created: a new or empty one,
which it marks (``.ceal-synthetic``) before anything else, or one that holds
its own earlier dataset. Pointing it at a real dataset's folder (the source
kind left at ``synthetic``) is refused with :class:`ForeignDataFolder`, never
filled with 2,000 synthetic frames.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline.frames.synthetic.camera import background, make_cameras, render
from ceal_pipeline.frames.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from ceal_pipeline.frames.synthetic.lidar import LidarModel, simulate_sweep
from ceal_pipeline.frames.synthetic.scenes import LANE_WIDTH_M, draw_sequence, frame_at

INFO_FILE = "ceal_synthetic_infos.pkl"
MANIFEST_FILE = "manifest.json"
DATASET_NAME = "ceal-synthetic"
OWNER_MARKER = ".ceal-synthetic"
_OWN_FOLDERS = ("lidar", "camera")
LOCK_FILE = ".generate.lock"


class SyntheticDatasetMismatch(RuntimeError):
    """``root`` already holds a synthetic dataset generated with other parameters."""


class SyntheticDatasetBusy(RuntimeError):
    """Another process is generating the dataset in ``root``, or reading the one there."""


@contextmanager
def dataset_lock(root: str | Path, *, exclusive: bool):
    """Hold ``root``'s generation lock: exclusive to (re)generate, shared to read.

    Never waits: a conflicting holder raises :class:`SyntheticDatasetBusy` naming
    ``root`` and what to do.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            doing = "another process is reading" if exclusive else "another process is generating"
            raise SyntheticDatasetBusy(
                f"{doing} the synthetic dataset in {root}; wait for it to finish and run again, or use another "
                "root (a dataset is never regenerated under its readers)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

class ForeignDataFolder(RuntimeError):
    """``root`` holds files the synthetic generator did not write; it refuses to write there."""


def _claim(root: Path) -> None:
    """Make sure ``root`` is the generator's own folder (new, empty, marked, or its dataset), and mark it."""
    if root.exists() and not root.is_dir():
        raise ForeignDataFolder(f"{root} is a file, not a folder: give the synthetic source a new or empty folder")
    entries = sorted(p.name for p in root.iterdir() if p.name != LOCK_FILE) if root.is_dir() else []
    manifest = read_manifest(root) if entries else None
    owned = not entries or OWNER_MARKER in entries or (manifest or {}).get("generator") == DATASET_NAME
    if not owned:
        raise ForeignDataFolder(
            f"{root} holds files the synthetic generator did not write ({', '.join(entries[:5])}"
            f"{', ...' if len(entries) > 5 else ''}); it never writes into a folder it did not create. If this is "
            f"your dataset, configure it as such: `ceal init --source aimotive --root {root}` (or --source mmdet3d "
            "--info FILE), or set source.kind in ceal.yaml; for synthetic frames give source.root (CEAL_DATA_ROOT) "
            "a new or empty folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    if OWNER_MARKER not in entries:
        (root / OWNER_MARKER).write_text(
            "written by the ceal-pipeline synthetic generator; it may replace lidar/, camera/ and its info file here\n"
        )


def frame_id(seed: int, sequence: int, frame: int) -> str:
    return f"syn{seed}-{sequence:05d}-{frame:03d}"


def read_manifest(root: str | Path) -> dict | None:
    """The manifest of a completed generation in ``root``, or ``None``."""
    path = Path(root) / MANIFEST_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _manifest_for(config: SyntheticConfig) -> dict:
    return {"generator": DATASET_NAME, "version": GENERATOR_VERSION, "info_file": INFO_FILE,
            "params": config.to_dict()}


def _ground_reflectance(lane_lines_y, pose):
    """Road 0.12, lane markings 0.7 (dashed between lanes, solid at the road edges)."""
    road_half = float(np.max(np.abs(lane_lines_y)))

    def reflectance(xy: np.ndarray) -> np.ndarray:
        world = xy @ pose[:2, :2].T + pose[:2, 3]
        # lane lines are evenly spaced: the nearest one is a rounding away
        nearest = np.round(world[:, 1] / LANE_WIDTH_M) * LANE_WIDTH_M
        on_line = (np.abs(world[:, 1] - nearest) < 0.08) & (np.abs(nearest) <= road_half + 1e-6)
        edge = np.abs(np.abs(nearest) - road_half) < 1e-6
        marking = on_line & (edge | ((world[:, 0] % 9.0) < 3.0))
        return np.where(marking, 0.7, 0.12)

    return reflectance


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def generate_dataset(root: str | Path, n_frames: int = 2000, seed: int = 0, *, overwrite: bool = False,
                     progress=None, **options) -> Path:
    """Generate (or reuse) the synthetic dataset in ``root``; returns the info file path.

    ``options`` are further :class:`SyntheticConfig` fields. If ``root`` already
    holds a completed dataset with the same parameters it is reused untouched;
    with different parameters :class:`SyntheticDatasetMismatch` is raised unless
    ``overwrite`` (then the generator's own files are replaced); one written by
    another generator version is regenerated. A folder holding anything else is
    refused (:class:`ForeignDataFolder`). ``progress``, if
    given, is called as ``progress(frames_done, n_frames)``.
    """
    config = SyntheticConfig.from_options(n_frames=n_frames, seed=seed, **options)
    root = Path(root)
    _claim(root)
    wanted = _manifest_for(config)
    if _reusable(root, wanted, overwrite):
        return root / INFO_FILE
    with dataset_lock(root, exclusive=True):
        if _reusable(root, wanted, overwrite):  # another process finished it while we waited for the lock
            return root / INFO_FILE
        return _generate(root, config, wanted, progress)


def _reusable(root: Path, wanted: dict, overwrite: bool) -> bool:
    existing = read_manifest(root)
    if existing is None or not (root / INFO_FILE).is_file():
        return False
    if existing == wanted:
        return True
    # Data from another generator version is stale whatever its parameters:
    # regenerate it; only a parameter change by the user needs consent.
    if existing.get("version") == GENERATOR_VERSION and not overwrite:
        raise SyntheticDatasetMismatch(
            f"{root} holds a synthetic dataset generated with {existing.get('params')}, not {wanted['params']}: "
            "pick another root, or pass overwrite=True (CLI: --overwrite) to regenerate it"
        )
    return False


def _generate(root: Path, config: SyntheticConfig, wanted: dict, progress) -> Path:
    """Write the dataset (under the exclusive lock), then remove what the previous generation left."""
    (root / MANIFEST_FILE).unlink(missing_ok=True)
    cameras = make_cameras(config)
    for camera in cameras:
        (root / "camera" / camera.name).mkdir(parents=True, exist_ok=True)
    (root / "lidar").mkdir(exist_ok=True)
    lidar = LidarModel(config)
    backgrounds = {(c.name, night): background(c, night) for c in cameras for night in (False, True)}
    data_list = []
    done = 0
    for sequence in range(config.n_sequences):
        scene = draw_sequence(config, sequence)
        # frame-level randomness has its own stream so scene drawing stays stable
        rng = np.random.default_rng([config.seed, sequence, 1])
        n_in_sequence = min(config.frames_per_sequence, config.n_frames - done)
        for k in range(n_in_sequence):
            data_list.append(_write_frame(root, config, scene, k, lidar, cameras, backgrounds, rng, len(data_list)))
            done += 1
            if progress is not None:
                progress(done, config.n_frames)
    metainfo = {
        "categories": {name: i for i, name in enumerate(DETECTION_CLASSES)},
        "dataset": DATASET_NAME,
        "info_version": "1.1",
        "version": GENERATOR_VERSION,
        "box_frame": "lidar",
        "box_origin_z": 0.0,
        "lidar_height_m": config.lidar_height_m,
        "params": config.to_dict(),
    }
    _atomic_write(root / INFO_FILE, pickle.dumps({"metainfo": metainfo, "data_list": data_list}, protocol=4))
    _atomic_write(root / MANIFEST_FILE, (json.dumps(wanted, indent=2, sort_keys=True) + "\n").encode())
    _remove_stale_files(root, data_list)
    return root / INFO_FILE


def _remove_stale_files(root: Path, data_list: list[dict]) -> None:
    """Delete files under the generator's own folders that the new info file does not name
    (a previous generation's frames, temporary files of a killed one)."""
    named = {entry["lidar_points"]["lidar_path"] for entry in data_list}
    named |= {image["img_path"] for entry in data_list for image in entry["images"].values()}
    for folder in _OWN_FOLDERS:
        for dirpath, _, names in os.walk(root / folder):
            for name in names:
                path = Path(dirpath) / name
                if path.relative_to(root).as_posix() not in named:
                    path.unlink(missing_ok=True)


def _write_frame(root, config, scene, k, lidar, cameras, backgrounds, rng, sample_idx) -> dict:
    view = frame_at(scene, k, config)
    fid = frame_id(config.seed, scene.index, k)
    points, _ = simulate_sweep(lidar, view.parts, view.part_reflectance,
                               _ground_reflectance(scene.lane_lines_y, view.ego_pose), rng, rain=scene.rain)
    counts = count_points_in_boxes(points, view.label_boxes)
    lidar_rel = f"lidar/{fid}.bin"
    _atomic_write(root / lidar_rel, points.tobytes())
    timestamp = round(scene.index * 1000.0 + view.t, 6)  # sequences 1000 s apart on one clock
    images = {}
    noise = (16.0 if scene.night else 3.0) + (4.0 if scene.rain else 0.0)
    for camera in cameras:
        pixels = render(camera, backgrounds[(camera.name, scene.night)], view.parts, view.part_colors,
                        scene.night, noise, rng)
        rel = f"camera/{camera.name}/{fid}.jpg"
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, format="JPEG", quality=90)
        _atomic_write(root / rel, encoded.getvalue())
        images[camera.name] = {
            "img_path": rel, "cam2img": camera.cam2img.tolist(), "lidar2cam": camera.lidar2cam.tolist(),
            "cam2ego": camera.cam2ego.tolist(), "height": camera.height, "width": camera.width,
            "timestamp": timestamp,
        }
    seen = counts >= config.min_points_per_box
    instances = [
        {"bbox_3d": [round(float(v), 5) for v in box], "bbox_label": int(label), "bbox_label_3d": int(label),
         "bbox_3d_isvalid": True, "num_lidar_pts": int(n), "velocity": [round(float(v), 4) for v in velocity],
         "track_id": f"{scene.index}-{int(track)}"}
        for box, label, n, velocity, track in zip(view.label_boxes[seen], view.labels[seen], counts[seen],
                                                  view.velocities[seen], view.track_ids[seen])
    ]
    return {
        "sample_idx": sample_idx, "token": fid, "timestamp": timestamp,
        "scene_token": f"syn{config.seed}-{scene.index:05d}",
        "split": scene.split, "conditions": scene.conditions, "ego2global": view.ego_pose.tolist(),
        "lidar_points": {"lidar_path": lidar_rel, "num_pts_feats": 4, "lidar2ego": np.eye(4).tolist()},
        "images": images, "instances": instances, "lane_width_m": LANE_WIDTH_M,
    }
