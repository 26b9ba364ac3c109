"""Checking the files a source names, each path once.

Fleet info files name the same point cloud or image from many entries (shared
calibration targets, benchmark data, re-used sweeps); a reader asks
:class:`FileChecks` per entry and pays for each distinct path once.
"""

from __future__ import annotations

import os
from stat import S_ISREG

from ceal_pipeline.frames.entry_checks import MAX_POINT_FILE_BYTES, path_problem
from ceal_pipeline.frames.points import LidarReadError, check_bin_file, finite_points, read_bin_points
from ceal_pipeline.frames.records import LidarFormat

CHECK_LEVELS = ("exists", "header", "points")


class FileChecks:
    """File checks at one ``check`` level, each path checked once.

    ``problem`` results are ``(message, path)`` or ``None``. Images: ``exists``
    stats them; ``header`` also refuses empty files and reads the header when the
    info file gives no size; ``points`` decodes every image (a garbage or
    truncated JPEG fails here, not in training).
    """

    def __init__(self, check: str):
        if check not in CHECK_LEVELS:
            raise ValueError(f"check={check!r}: use one of {CHECK_LEVELS}")
        self.check = check
        self._lidar: dict[tuple[str, int], tuple[str, str] | None] = {}
        self._images: dict[tuple[str, bool], tuple[int, int] | tuple[str, str]] = {}

    def lidar(self, path: str, num_features: int) -> tuple[str, str] | None:
        key = (path, num_features)
        if key not in self._lidar:
            self._lidar[key] = self._check_lidar(path, LidarFormat(kind="bin", num_features=num_features))
        return self._lidar[key]

    def _check_lidar(self, path: str, lidar_format: LidarFormat) -> tuple[str, str] | None:
        if path_problem(path):
            return f"LiDAR file: {path_problem(path)}", ascii(path)
        if not os.path.isfile(path):
            return f"LiDAR file {path} is missing", path
        try:
            if self.check == "header":
                check_bin_file(path, lidar_format)
            elif self.check == "points":
                size = os.path.getsize(path)
                if size > MAX_POINT_FILE_BYTES:
                    return (f"LiDAR file {path} holds {size} bytes, more than any sweep ({MAX_POINT_FILE_BYTES}); "
                            "check that the info file names the right file"), path
                finite_points(read_bin_points(path, lidar_format), path)
        except (LidarReadError, OSError) as exc:
            return str(exc), path
        return None

    def image(self, path: str, need_size: bool):
        """``(width, height)`` (0, 0 when not read) or a ``(message, path)`` problem (a 2-tuple of str)."""
        key = (path, need_size and self.check != "exists")
        if key not in self._images:
            self._images[key] = self._check_image(path, key[1])
        return self._images[key]

    def _check_image(self, path: str, read_size: bool):
        if path_problem(path):
            return f"camera image: {path_problem(path)}", ascii(path)
        try:
            stat = os.stat(path)
        except OSError:
            stat = None
        if stat is None or not S_ISREG(stat.st_mode):
            return f"camera image {path} is missing", path
        if self.check == "exists":
            return 0, 0
        if stat.st_size == 0:
            return f"camera image {path} is empty (0 bytes); restore it from the dataset", path
        decode = self.check == "points"
        if not (read_size or decode):
            return 0, 0
        from PIL import Image

        try:
            with Image.open(path) as opened:
                if decode:
                    opened.load()
                return opened.size
        except Exception as exc:
            return f"camera image {path} is unreadable ({type(exc).__name__}: {exc}); restore it from the dataset", path
