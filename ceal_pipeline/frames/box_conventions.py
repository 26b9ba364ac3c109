"""Conversions from the box conventions sources use into the pipeline's one
convention: LiDAR frame, bottom-centre origin, ``x y z l w h yaw`` (see
:mod:`ceal_pipeline.frames.records`).

Three conventions occur in practice:
- centre-origin LiDAR boxes (nuScenes and Lyft mmdet3d infos, aiMotive's
  ``BoundingBox3D Origin``): drop ``z`` by half the height;
- orientation as a quaternion (aiMotive, order W, X, Y, Z): keep the yaw about +z;
- camera-frame boxes (KITTI infos, Waymo infos written by ``update_infos_to_v2``):
  ``x y z`` bottom centre in the rectified camera frame (x right, y down,
  z forward), sizes ``l h w``, rotation ``ry`` about camera +y. These are moved
  with ``inverse(lidar2cam)`` as mmdet3d's ``CameraInstance3DBoxes.convert_to``
  does; the heading is rotated with the full calibration rotation (mmdet3d's
  ``correct_yaw=True``), which equals mmdet3d's default ``-ry - pi/2`` exactly
  when the calibration is the ideal axis permutation and stays right when it
  is not.
"""

from __future__ import annotations

import numpy as np

from ceal_pipeline.core.boxes import Boxes


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles (radians) wrapped into ``[-pi, pi)``."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def quaternion_wxyz_to_yaw(quaternions: np.ndarray) -> np.ndarray:
    """Yaw (radians about +z, from +x) of ``(n, 4)`` quaternions ordered W, X, Y, Z.

    The quaternions are normalised first; a zero-norm quaternion raises
    ``ValueError`` because it describes no rotation at all.
    """
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1)
    if np.any(~np.isfinite(norm)) or np.any(norm < 1e-9):
        raise ValueError("quaternion with zero or non-finite norm: it describes no orientation")
    w, x, y, z = (q / norm[:, None]).T
    # Z-Y-X (yaw-pitch-roll) decomposition: the yaw term of the rotation matrix.
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def yaw_to_quaternion_xyzw(yaw: np.ndarray) -> np.ndarray:
    """``(n, 4)`` quaternions ordered X, Y, Z, W (ASAM OpenLABEL's order) of rotations
    by ``yaw`` radians about +z."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64).reshape(-1)
    zeros = np.zeros_like(half)
    return np.column_stack([zeros, zeros, np.sin(half), np.cos(half)])


def quaternion_xyzw_to_yaw(quaternions: np.ndarray) -> np.ndarray:
    """Yaw (radians about +z) of ``(n, 4)`` quaternions ordered X, Y, Z, W; see
    :func:`quaternion_wxyz_to_yaw` (pitch and roll are dropped)."""
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    return quaternion_wxyz_to_yaw(q[:, [3, 0, 1, 2]])


def to_centre_origin(boxes: np.ndarray) -> np.ndarray:
    """Bottom-centre ``(n, 7)`` boxes -> the gravity centre as origin (the inverse of
    :func:`to_bottom_origin` with ``origin_z=0.5``); metres."""
    return Boxes(np.asarray(boxes).reshape(-1, 7)).to_origin(0.5)


def to_bottom_origin(boxes: np.ndarray, origin_z: float = 0.5) -> np.ndarray:
    """``(n, 7)`` boxes whose origin sits ``origin_z`` of the height up (0.5: the
    gravity centre) -> bottom-centre origin; metres."""
    return Boxes.from_origin(boxes, origin_z).values.copy()


def camera_boxes_to_lidar(boxes_cam: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """Camera-frame boxes ``(n, 7)`` ``x y z l h w ry`` (bottom centre, mmdet3d's
    ``CameraInstance3DBoxes``) -> LiDAR-frame ``x y z l w h yaw`` bottom centre.

    ``lidar2cam`` is the 4x4 transform from LiDAR to (rectified) camera
    coordinates, metres; for KITTI it is ``R0_rect @ Tr_velo_to_cam``.
    """
    boxes_cam = np.asarray(boxes_cam, dtype=np.float64).reshape(-1, 7)
    lidar2cam = np.asarray(lidar2cam, dtype=np.float64)
    if lidar2cam.shape != (4, 4):
        raise ValueError(f"lidar2cam must be 4x4, got {lidar2cam.shape}")
    cam2lidar = np.linalg.inv(lidar2cam)
    xyz = boxes_cam[:, :3] @ cam2lidar[:3, :3].T + cam2lidar[:3, 3]
    ry = boxes_cam[:, 6]
    # Heading in camera coordinates as mmdet3d defines it: rotation about +y
    # (down) of the +x axis, i.e. (cos ry, 0, -sin ry).
    heading_cam = np.stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)], axis=1)
    heading_lidar = heading_cam @ cam2lidar[:3, :3].T
    yaw = np.arctan2(heading_lidar[:, 1], heading_lidar[:, 0])
    length, height, width = boxes_cam[:, 3], boxes_cam[:, 4], boxes_cam[:, 5]
    return np.column_stack([xyz, length, width, height, wrap_angle(yaw)])


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """``(n, 8, 3)`` corners of bottom-centre LiDAR boxes; the first four are the
    bottom face counter-clockwise from (+l/2, +w/2), the last four the top face."""
    return Boxes(np.asarray(boxes).reshape(-1, 7)).corners()
