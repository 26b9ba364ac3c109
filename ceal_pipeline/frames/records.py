"""The frame record every source yields and every consumer reads.

Boxes are always in the LiDAR (body) frame as ``x, y, z, l, w, h, yaw``:
``(x, y, z)`` the centre of the box's *bottom face* in metres (mmdet3d's
``LiDARInstance3DBoxes`` origin ``(0.5, 0.5, 0)``), ``l`` along the heading, ``w``
across it, ``h`` up, ``yaw`` in radians about +z measured from +x. Sources convert
their own conventions into this one, once; the detector uses it unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

#: What a frame id may look like (matched whole, with ``fullmatch``): it becomes part of file
#: names and export rows. ``@`` is allowed after the first character because aiMotive's
#: sequence names hold it (``...-00.37.27@Yoda``).
#:
#: One policy for every source: an id is kept exactly as the source writes it, or the
#: frame is quarantined with the original id shown (:func:`shown_id`) and the fix. No id
#: is ever rewritten, so two different source ids can never become one.
FRAME_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+@\-]{0,199}")
ALLOWED_ID_CHARACTERS = "letters, digits and '._:+-@'"

#: Detector classes, in label order, for every source (sources map onto these).
DETECTION_CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian", "cyclist")


class InvalidFrameId(ValueError):
    """A frame id that is not safe to use as data, file name or export row."""


def validate_frame_id(frame_id: str) -> str:
    """Return ``frame_id`` if it is a safe id, else raise :class:`InvalidFrameId`.

    Ids are 1-200 ASCII characters of letters, digits and ``. _ : + - @``,
    starting with a letter or digit, so they can never escape a folder when used
    in a file name nor start a spreadsheet formula.
    """
    if not is_valid_frame_id(frame_id):
        raise InvalidFrameId(invalid_id_message(frame_id))
    return frame_id


def is_valid_frame_id(frame_id) -> bool:
    """Whether ``frame_id`` is a str matching :data:`FRAME_ID_PATTERN` as a whole (``"abc\\n"`` is not)."""
    return isinstance(frame_id, str) and frame_id.isascii() and FRAME_ID_PATTERN.fullmatch(frame_id) is not None


def shown_id(raw) -> str:
    """How a frame id is shown in a quarantine entry or an error: as it is when it is a
    valid id, else its ``ascii()`` form (quotes and escapes, never a valid id itself), so
    that two different bad ids stay two entries and any byte the source holds prints."""
    return raw if is_valid_frame_id(raw) else ascii(raw)


def invalid_id_message(raw) -> str:
    """Why ``raw`` is not a frame id, with the original shown and the fix."""
    return (f"frame id {ascii(raw)} is not valid: use 1-200 ASCII characters of {ALLOWED_ID_CHARACTERS}, "
            "starting with a letter or digit (ids are never rewritten, so rename the frame in its source)")


@dataclass(frozen=True)
class LidarFormat:
    """How to read a LiDAR file: ``kind`` is ``"bin"`` (float32 rows of
    ``num_features`` values, mmdet3d style) or ``"laz"`` (laspy + lazrs)."""

    kind: str = "bin"
    num_features: int = 4
    #: Columns kept for the detector: x, y, z, intensity.
    use_dims: tuple[int, ...] = (0, 1, 2, 3)


@dataclass(frozen=True)
class CameraRecord:
    """One camera image with its calibration.

    ``cam2img`` is the 3x3 pinhole intrinsic matrix (pixels); ``lidar2cam`` the
    4x4 rigid transform taking LiDAR-frame points into the camera frame
    (x right, y down, z forward, metres). ``model`` names the lens model the
    intrinsics belong to (``"pinhole"``, ``"opencv_pinhole"`` with
    ``distortion = (k1, k2, p1, p2, k3)``, ``"mei"`` fisheye with
    ``distortion = (xi, k1, k2, p1, p2)``): a consumer that projects with
    ``cam2img`` alone is exact only for ``"pinhole"``.
    """

    name: str
    path: str
    cam2img: np.ndarray
    lidar2cam: np.ndarray
    width: int = 0
    height: int = 0
    model: str = "pinhole"
    distortion: tuple[float, ...] = ()


@dataclass(frozen=True)
class FrameRecord:
    """One driving frame as the pipeline knows it.

    ``boxes`` is ``(n, 7)`` float32 in the LiDAR frame (see module docstring) and
    ``labels`` ``(n,)`` int64 indices into ``class_names``; both are ``None`` for
    an unlabeled frame. ``timestamp`` is in seconds. ``ego_pose`` is the 4x4
    ego-to-global transform (metres) where the source records one, else ``None``.
    """

    frame_id: str
    sequence_id: str
    timestamp: float
    lidar_path: str
    lidar_format: LidarFormat = field(default_factory=LidarFormat)
    cameras: tuple[CameraRecord, ...] = ()
    boxes: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = DETECTION_CLASSES
    source: str = "synthetic"
    split: str = "train"
    ego_pose: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_frame_id(self.frame_id)
        if (self.boxes is None) != (self.labels is None):
            raise ValueError(f"frame {self.frame_id}: boxes and labels must both be given or both be None")
        if self.boxes is not None:
            if self.boxes.ndim != 2 or self.boxes.shape[1] != 7:
                raise ValueError(
                    f"frame {self.frame_id}: boxes must be (n, 7) x, y, z, l, w, h, yaw; got {self.boxes.shape}"
                )
            if len(self.labels) != len(self.boxes):
                raise ValueError(f"frame {self.frame_id}: {len(self.boxes)} boxes but {len(self.labels)} labels")

    @property
    def is_labeled(self) -> bool:
        return self.boxes is not None


@dataclass(frozen=True)
class QuarantinedFrame:
    """A frame a source could not read, with the reason and the offending file."""

    frame_id: str
    reason: str
    path: str = ""
    source: str = ""
