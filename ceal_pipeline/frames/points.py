"""Reading LiDAR point clouds: mmdet3d-style ``.bin`` files and LAZ (laspy + lazrs).

Every reader returns ``float32 (P, 4)`` rows ``x, y, z, intensity`` in the
LiDAR frame (metres). Intensity keeps the source's own scale (aiMotive LAZ and
nuScenes 0-255, KITTI and Waymo 0-1, the synthetic generator 0-255): the
detector is trained per source, so no rescaling is imposed here. Rows with a
non-finite coordinate (padding in some exports) are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ceal_pipeline.frames.records import FrameRecord, LidarFormat


class LidarReadError(RuntimeError):
    """A LiDAR file that is missing, truncated or not in the format its record says."""


def _laz_backend():
    import laspy

    # lazrs is the backend the project installs; fall back to whatever laspy finds
    # (e.g. laszip) rather than failing on a machine that has only that one. The
    # single-threaded lazrs first: LazrsParallel's rayon thread pool does not survive a
    # fork, so a DataLoader worker forked after the parent decoded a LAZ file waits for
    # pool threads that do not exist, forever (seen in a real-data round); frames are
    # decoded in parallel by the loader's worker processes instead.
    available = laspy.LazBackend.detect_available()
    for backend in (laspy.LazBackend.Lazrs, laspy.LazBackend.LazrsParallel):
        if backend in available:
            return backend
    if not available:
        raise LidarReadError("no LAZ backend available: install lazrs (`pip install lazrs`)")
    return available[0]


def read_laz_points(path: str | os.PathLike) -> np.ndarray:
    """``float32 (P, 4)`` x, y, z, intensity from a LAS/LAZ file."""
    import laspy

    las = laspy.read(str(path), laz_backend=_laz_backend())
    return np.column_stack(
        [np.asarray(las.x), np.asarray(las.y), np.asarray(las.z), np.asarray(las.intensity)]
    ).astype(np.float32)


def read_laz_start_time(path: str | os.PathLike) -> tuple[int, float]:
    """``(point_count, gps_time of the first point)`` from a LAZ file, decoding
    only the header and the first chunk (about a millisecond).

    Raises :class:`LidarReadError` when the header is unreadable or the file holds
    no points.
    """
    import laspy

    try:
        with laspy.open(str(path), laz_backend=_laz_backend()) as reader:
            count = int(reader.header.point_count)
            if count == 0:
                raise LidarReadError(f"LAZ file {path} holds no points")
            first = reader.read_points(1)
            gps_time = float(first.gps_time[0]) if "gps_time" in first.point_format.dimension_names else float("nan")
    except LidarReadError:
        raise
    except Exception as exc:  # laspy raises several types for corrupt files
        raise LidarReadError(f"LAZ file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    return count, gps_time


def read_bin_points(path: str | os.PathLike, lidar_format: LidarFormat) -> np.ndarray:
    """``float32 (P, 4)`` from an mmdet3d ``.bin``: rows of ``num_features`` float32,
    keeping ``use_dims`` (x, y, z, intensity; a missing intensity reads as 0)."""
    raw = np.fromfile(str(path), dtype=np.float32)
    n_features = int(lidar_format.num_features)
    if n_features < 3:
        raise LidarReadError(f"{path}: num_features={n_features}, but x, y, z need at least 3")
    if raw.size % n_features:
        raise LidarReadError(
            f"{path}: {raw.size} float32 values are not a whole number of {n_features}-feature points "
            "(truncated file, or wrong num_pts_feats in the info file)"
        )
    rows = raw.reshape(-1, n_features)
    dims = [d for d in lidar_format.use_dims if d < n_features][:4]
    if len(dims) < 3:
        raise LidarReadError(f"{path}: use_dims {lidar_format.use_dims} must name x, y, z columns")
    points = np.zeros((len(rows), 4), dtype=np.float32)
    points[:, : len(dims)] = rows[:, dims]
    return points


def finite_points(points: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``points`` without rows whose x, y or z is not finite (padding in some exports).

    Raises :class:`LidarReadError` when no point is left: an empty or all-NaN
    cloud is a broken file, not a frame where the LiDAR saw nothing.
    """
    finite = np.isfinite(points[:, :3]).all(axis=1)
    if not finite.any():
        what = "holds no points" if len(points) == 0 else f"holds no finite point (all {len(points)} are NaN/inf)"
        raise LidarReadError(f"LiDAR file {path} {what}")
    return points if finite.all() else points[finite]


def check_bin_file(path: str | os.PathLike, lidar_format: LidarFormat) -> None:
    """Cheap structural check of a ``.bin`` (size only); raises :class:`LidarReadError`."""
    size = os.path.getsize(path)
    if int(lidar_format.num_features) < 3:
        raise LidarReadError(f"{path}: num_features={lidar_format.num_features}, but x, y, z need at least 3")
    row_bytes = 4 * int(lidar_format.num_features)
    if size == 0 or size % row_bytes:
        raise LidarReadError(
            f"{path}: {size} bytes is not a positive multiple of {row_bytes} "
            f"({lidar_format.num_features} float32 features per point): truncated or wrong num_pts_feats"
        )


def load_points(record: FrameRecord) -> np.ndarray:
    """The frame's point cloud as ``float32 (P, 4)`` x, y, z (metres, LiDAR frame), intensity.

    Raises :class:`LidarReadError` naming the frame and file when the file is
    missing or unreadable.
    """
    path = Path(record.lidar_path)
    kind = record.lidar_format.kind
    try:
        if not path.is_file():
            raise LidarReadError(f"LiDAR file {path} does not exist")
        if kind == "bin":
            points = read_bin_points(path, record.lidar_format)
        elif kind in ("laz", "las"):
            try:
                points = read_laz_points(path)
            except LidarReadError:
                raise
            except Exception as exc:
                raise LidarReadError(f"LAZ file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
        else:
            raise LidarReadError(f"unknown LiDAR format kind {kind!r} (expected 'bin' or 'laz')")
        points = finite_points(points, path)
    except LidarReadError as exc:
        raise LidarReadError(
            f"frame {record.frame_id}: {exc}; fix or remove the file, or re-run the source's preparation"
        ) from exc
    return points
