"""3D boxes in the pipeline's one convention, as a typed value instead of a bare ``(n, 7)`` array.

Convention (every source is converted into it when read, every export out of it
when written): LiDAR frame (x forward, y left, z up, metres); values
``x y z l w h yaw``, where ``x y z`` is the **bottom centre** (the centre of the
box's floor), ``l w h`` the extents along the box's own x, y and z axes, and
``yaw`` the heading in radians about +z, counter-clockwise from +x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

#: Values per box, in order.
BOX_FIELDS: tuple[str, ...] = ("x", "y", "z", "l", "w", "h", "yaw")


@dataclass(frozen=True, eq=False)
class Boxes:
    """``n`` boxes in the pipeline's convention (module docstring): LiDAR frame, bottom-centre
    origin, ``x y z l w h yaw`` in metres and radians.

    ``values`` is a read-only ``(n, 7)`` float64 array (a copy of what was given, so the
    caller's array can change without changing the boxes). Build from another origin with
    :meth:`from_origin`; leave for one with :meth:`to_origin`.
    """

    values: np.ndarray
    #: The coordinate frame and the origin of ``x y z``: fixed, the pipeline has one convention.
    frame: ClassVar[Literal["lidar"]] = "lidar"
    origin: ClassVar[Literal["bottom_centre"]] = "bottom_centre"

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64, copy=True)
        if values.size == 0:
            values = values.reshape(0, 7)
        if values.ndim != 2 or values.shape[1] != 7:
            raise ValueError(f"boxes must be (n, 7) x y z l w h yaw (metres, radians; {self.frame} frame, "
                             f"{self.origin} origin), got shape {values.shape}")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    @classmethod
    def from_origin(cls, values: np.ndarray, origin_z: float) -> "Boxes":
        """Boxes whose ``z`` is ``origin_z`` of the height above the floor (0.5: the gravity
        centre, as nuScenes, Lyft, aiMotive and OpenLABEL give them; 0: already bottom centre)."""
        values = np.array(values, dtype=np.float64, copy=True).reshape(-1, 7)
        values[:, 2] -= values[:, 5] * origin_z
        return cls(values)

    def to_origin(self, origin_z: float) -> np.ndarray:
        """``(n, 7)`` float64 values with ``z`` moved ``origin_z`` of the height up (0.5: the
        gravity centre); the inverse of :meth:`from_origin`."""
        out = self.values.copy()
        out[:, 2] += out[:, 5] * origin_z
        return out

    def corners(self) -> np.ndarray:
        """``(n, 8, 3)`` corners in metres: the first four the floor, counter-clockwise (seen
        from above) from (+l/2, +w/2) in the box's own axes, the last four the roof above them."""
        boxes = self.values
        sx = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float64) * 0.5
        sy = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64) * 0.5
        sz = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.float64)
        lx = boxes[:, 3:4] * sx
        ly = boxes[:, 4:5] * sy
        cos, sin = np.cos(boxes[:, 6:7]), np.sin(boxes[:, 6:7])
        x = boxes[:, 0:1] + lx * cos - ly * sin
        y = boxes[:, 1:2] + lx * sin + ly * cos
        z = boxes[:, 2:3] + boxes[:, 5:6] * sz
        return np.stack([x, y, z], axis=-1)

    def bev_centres(self) -> np.ndarray:
        """``(n, 2)`` bird's-eye-view centres ``x y`` in metres."""
        return self.values[:, :2]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __eq__(self, other: object) -> bool:
        """The same boxes, value for value, in the same order."""
        if not isinstance(other, Boxes):
            return NotImplemented
        return bool(np.array_equal(self.values, other.values))

    __hash__ = None  # a value with an array inside: equal boxes need not hash alike
