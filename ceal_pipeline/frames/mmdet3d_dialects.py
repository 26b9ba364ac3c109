"""Which mmdet3d v2 info dialect a file is, decided from its entries' structure.

mmdet3d's converters (v1.4.0: ``update_infos_to_v2.py``, ``waymo_converter.py``,
``kitti_converter.py``) all write ``{'metainfo', 'data_list'}``, but the entries
differ in more than key names: where the boxes live, where their origin sits, what
identifies a frame and a sequence. The metainfo's name cannot be trusted to say
which (mmdet3d's own Lyft fixture says ``DATASET: Nuscenes``; KITTI-layout Waymo
files come in two box conventions), so :func:`detect_dialect` reads the first
entry's structure and uses the name only when the structure says nothing:

=================  ==============================================  ===========  ======  ==========
dialect            recognised by                                   box frame    origin  sequence
=================  ==============================================  ===========  ======  ==========
``kitti``          ``images['R0_rect']`` (a matrix, not a camera),  camera CAM2  bottom  none: each
                   or ``CAM2`` + ``lidar_points.Tr_velo_to_cam``                         frame its own
``waymo_v1.4``     ``metainfo.info_version == 'mmdet3d_v1.4'`` or  LiDAR        bottom  ``context_name``
                   ``context_name`` in the entry
``waymo_kitti``    ``CAM_FRONT`` + ``lidar_points.Tr_velo_to_cam``  camera       bottom  ``sample_idx //
                   (Waymo infos updated from the KITTI-layout       CAM_FRONT            1000`` (prefix +
                   converter by ``update_infos_to_v2``)                                  file index)
``nuscenes``       ``token`` + ``lidar_points.lidar2ego``           LiDAR        centre  log name in the
                                                                                         LiDAR file name
``lyft``           as nuScenes, with Lyft's classes or name         LiDAR        centre  none
``generic``        none of these (ceal-synthetic, in-house files)   metainfo     meta    ``sequence_id``
=================  ==============================================  ===========  ======  ==========

KITTI records no time: its frames read as recorded at 0 s (the acquisition
history needs a number; nothing orders KITTI frames in time). A file whose metainfo states its convention (``box_frame`` / ``box_origin_z``,
as ceal-synthetic writes) is read by it, whatever its structure; other
``generic`` files get LiDAR bottom-centre boxes, or the convention of the dataset
the metainfo names (a hand-written KITTI fixture without ``R0_rect`` still holds
camera-frame boxes).

nuScenes infos hold no scene token (mmdet3d's converter drops it); the LiDAR file
name's log prefix (``n015-2018-08-02-17-16-37+0800__LIDAR_TOP__...``) groups the
frames of one drive, which may span several nuScenes scenes. An entry's own
``scene_token`` / ``sequence_id`` / ``context_name`` always wins
(:func:`ceal_pipeline.frames.mmdet3d_info.sequence_of`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

#: Keys of ``images`` that hold a calibration matrix, not a camera (KITTI's rectification).
CALIBRATION_KEYS = frozenset({"R0_rect"})

#: Class names that only Lyft's list holds (mmdet3d's Lyft fixture names its dataset "Nuscenes").
_LYFT_ONLY = frozenset({"emergency_vehicle", "other_vehicle", "animal"})


@dataclass(frozen=True)
class Dialect:
    """How one info file's entries are read.

    ``box_frame`` ``"camera"`` means ``bbox_3d`` is ``x y z l h w ry`` in the
    rectified frame of ``ref_camera`` (converted with that frame's
    ``lidar2cam``); ``origin_z`` is the origin's relative height (0 bottom,
    0.5 gravity centre); ``sequence`` says in words where the sequence id comes from.
    """

    name: str
    box_frame: str
    origin_z: float
    ref_camera: str | None
    sequence: str
    #: the dataset whose class list names the labels when the metainfo has none
    classes_of: str | None = None
    #: mmdet3d's ``data_prefix`` for this dataset (its configs'): ``(LiDAR folder, camera folder(s))``,
    #: used when the caller names none and the folder exists under the root
    lidar_prefix: str | None = None
    camera_prefix: str | dict[str, str] | None = None
    #: seconds recorded for a frame the dataset gives no time (KITTI records none at all; the
    #: acquisition history needs a number); ``None``: left NaN, which the history refuses
    missing_time_s: float | None = None


KITTI = Dialect("kitti", "camera", 0.0, "CAM2", "none (KITTI frames are independent): each frame is its own",
                classes_of="kitti", lidar_prefix="training/velodyne", camera_prefix="training/image_2",
                missing_time_s=0.0)
_WAYMO_CAMERAS = {name: f"training/image_{i}" for i, name in enumerate(
    ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_SIDE_LEFT", "CAM_SIDE_RIGHT"))}
WAYMO_V14 = Dialect("waymo_v1.4", "lidar", 0.0, None, "context_name", classes_of="waymo",
                    lidar_prefix="training/velodyne", camera_prefix=_WAYMO_CAMERAS)
WAYMO_KITTI = Dialect("waymo_kitti", "camera", 0.0, "CAM_FRONT",
                      "sample_idx // 1000 (the converter's prefix and file index)", classes_of="waymo",
                      lidar_prefix="training/velodyne", camera_prefix=_WAYMO_CAMERAS)
NUSCENES = Dialect("nuscenes", "lidar", 0.5, None, "the log name before '__' in the LiDAR file name",
                   classes_of="nuscenes")
LYFT = Dialect("lyft", "lidar", 0.5, None, "none (Lyft file names carry no scene): each frame is its own",
               classes_of="lyft")

#: The dialect of a file whose structure is silent, by ``metainfo['dataset']`` (lower case).
_BY_NAME = {"kitti": KITTI, "waymo": WAYMO_KITTI, "nuscenes": NUSCENES, "lyft": LYFT}


def _first_entry(data_list) -> dict:
    for entry in data_list[:16] if isinstance(data_list, list) else ():
        if isinstance(entry, dict):
            return entry
    return {}


def _class_names(metainfo: dict) -> set[str]:
    names = metainfo.get("categories") or metainfo.get("classes") or ()
    return {str(name).lower() for name in names}


def detect_dialect(metainfo: dict, data_list: list) -> Dialect:
    """The dialect of an info file (``metainfo`` with lower-case keys) from its first entry."""
    entry = _first_entry(data_list)
    images = entry.get("images") if isinstance(entry.get("images"), dict) else {}
    lidar = entry.get("lidar_points") if isinstance(entry.get("lidar_points"), dict) else {}
    name = str(metainfo.get("dataset") or "").lower()
    if "box_frame" in metainfo or "box_origin_z" in metainfo:
        return _generic(metainfo)  # the file states its own convention (ceal-synthetic, our exports)
    if "R0_rect" in images or ("CAM2" in images and "Tr_velo_to_cam" in lidar):
        return KITTI
    if str(metainfo.get("info_version", "")) == "mmdet3d_v1.4" or "context_name" in entry:
        return WAYMO_V14
    if "CAM_FRONT" in images and "Tr_velo_to_cam" in lidar:
        return WAYMO_KITTI
    if "token" in entry and "lidar2ego" in lidar:
        return LYFT if name == "lyft" or _class_names(metainfo) & _LYFT_ONLY else NUSCENES
    if name == "waymo" and str(metainfo.get("info_version", "")) == "mmdet3d_v1.4":
        return WAYMO_V14
    if name in _BY_NAME:
        return _BY_NAME[name]
    return _generic(metainfo)


def _generic(metainfo: dict) -> Dialect:
    return Dialect("generic", str(metainfo.get("box_frame", "lidar")), float(metainfo.get("box_origin_z", 0.0)),
                   None, "sequence_id / scene_token / context_name of the entry, else the frame itself")


def default_prefixes(dialect: Dialect, root, lidar_prefix, camera_prefix) -> tuple:
    """``(lidar_prefix, camera_prefix)``: the caller's, else the dialect's mmdet3d ``data_prefix``
    where that folder exists under ``root`` (a KITTI root holds ``training/velodyne``...),
    else ``None`` (paths resolve against the root itself)."""
    from pathlib import Path

    root = Path(root)
    if lidar_prefix is None and dialect.lidar_prefix and (root / dialect.lidar_prefix).is_dir():
        lidar_prefix = dialect.lidar_prefix
    if camera_prefix is None and dialect.camera_prefix:
        wanted = dialect.camera_prefix
        folders = wanted.values() if isinstance(wanted, dict) else [wanted]
        if any((root / folder).is_dir() for folder in folders):
            camera_prefix = wanted
    return lidar_prefix, camera_prefix


def sequence_from_index(dialect: Dialect, entry: dict) -> str | None:
    """The sequence a dialect derives from the frame index (KITTI-layout Waymo), else ``None``."""
    if dialect is WAYMO_KITTI:
        index = entry.get("sample_idx")
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            return f"waymo-{int(index) // 1000}"
    return None
