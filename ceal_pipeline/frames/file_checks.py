"""Checking the files a source names, each path once.

Fleet info files name the same point cloud or image from many entries (shared
calibration targets, benchmark data, re-used sweeps); a reader asks
:class:`FileChecks` per entry and pays for each distinct path once.
"""

from __future__ import annotations

import os

from ceal_pipeline.frames.points import LidarReadError, check_bin_file, read_bin_points
from ceal_pipeline.frames.records import LidarFormat

CHECK_LEVELS = ("exists", "header", "points")


class FileChecks:
    """File checks at one ``check`` level, each path checked once.

    ``problem`` results are ``(message, path)`` or ``None``; image sizes are
    read from the header when the info file gives none (``check != "exists"``).
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
        if not os.path.isfile(path):
            return f"LiDAR file {path} is missing", path
        try:
            if self.check == "header":
                check_bin_file(path, lidar_format)
            elif self.check == "points":
                read_bin_points(path, lidar_format)
        except (LidarReadError, OSError) as exc:
            return str(exc), path
        return None

    def image(self, path: str, need_size: bool):
        """``(width, height)`` (0, 0 when not read) or a ``(message, path)`` problem (a 2-tuple of str)."""
        key = (path, need_size and self.check != "exists")
        if key not in self._images:
            self._images[key] = self._check_image(path, key[1])
        return self._images[key]

    @staticmethod
    def _check_image(path: str, read_size: bool):
        if not os.path.isfile(path):
            return f"camera image {path} is missing", path
        if not read_size:
            return 0, 0
        from PIL import Image

        try:
            with Image.open(path) as opened:
                return opened.size
        except Exception as exc:
            return f"camera image {path} is unreadable ({type(exc).__name__}: {exc})", path
