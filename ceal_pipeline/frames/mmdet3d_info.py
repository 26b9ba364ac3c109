"""Frames from mmdet3d v1.x info files (``{'metainfo', 'data_list'}``).

This is what mmdet3d's own preparation scripts write for nuScenes, KITTI, Waymo
and Lyft, and what the synthetic generator writes, so one reader covers them.
Per entry it reads ``token``/``sample_idx``/``sample_id`` (frame id), ``timestamp``,
``lidar_points.{lidar_path, num_pts_feats}``, ``images.<CAM>.{img_path, cam2img,
lidar2cam | cam2ego}`` and ``instances[j].{bbox_3d, bbox_label_3d}``.

Box conventions differ by dialect, which is decided once per file from the
entries' structure (:mod:`.mmdet3d_dialects`: KITTI's ``R0_rect``, Waymo's
``info_version``/``context_name``, nuScenes' ``token`` + ``lidar2ego``...), not
from the metainfo's name alone; ``box_frame``/``box_origin_z`` override it:

============================  ===========  =================  ==========================
dialect                       frame        origin (z)         why
============================  ===========  =================  ==========================
nuscenes, lyft                LiDAR        centre (0.5)       their converters store centres
kitti                         camera CAM2  bottom             ``KittiDataset`` converts with inv(lidar2cam)
waymo_kitti (updated infos)   camera       bottom             written by ``update_infos_to_v2``
waymo_v1.4                    LiDAR        bottom             new converter saves bottom centres
generic (ceal-synthetic...)   LiDAR        bottom             mmdet3d's LiDARInstance3DBoxes default
============================  ===========  =================  ==========================

Instances with label ``-1`` (ignored classes) are dropped, as mmdet3d does; the
other labels go through :data:`ceal_pipeline.frames.classes.CLASS_MAPPING`.

Dialects seen in the wild are read as v1.x: ``metainfo`` keys in other cases
(``DATASET: KITTI``, as mmdet3d's own fixtures write), no ``categories`` (class
names then come from ``classes`` or from the dataset's known class list,
:data:`KNOWN_CLASSES`), ``sample_id`` instead of ``sample_idx``. Labels that
still have no class name are counted in ``FrameSourceResult.unnamed_labels``
and explained by :func:`unnamed_labels_message`, never silently read as 0 boxes.
Paths resolve against ``root`` joined with ``lidar_prefix`` / ``camera_prefix``
(mmdet3d's ``data_prefix``; when not given, the dialect's default where that folder
exists, e.g. KITTI's ``training/velodyne`` and ``training/image_2``) and must stay inside ``root`` (or the prefix folder,
or one of ``extra_roots``): a ``../`` path or an absolute path elsewhere
quarantines its frame, since an info file is data, not configuration. The
check is lexical (symbolic links inside ``root`` are the dataset owner's choice).
Frame ids are kept exactly as written (``token``, ``sample_idx``...); an entry
whose id is not a valid frame id is quarantined with its original id shown
(:func:`ceal_pipeline.frames.records.shown_id`), never renamed.
Timestamps in micro- or nanoseconds (Waymo) are converted to seconds; KITTI
records none, so its frames read as 0 s; a missing timestamp elsewhere reads as NaN. The sequence is ``scene_token``,
``sequence_id`` or ``context_name`` when present, else the nuScenes-style log
name before ``__`` in the LiDAR file name, else the frame itself.

Parsing is vectorised a chunk of entries at a time (:mod:`.mmdet3d_columns`).
Info files are pickles: read only files you trust, as with mmdet3d itself.
"""

from __future__ import annotations

import contextlib
import gc
import json
import pickle
import os
import posixpath
import re
import time
from pathlib import Path, PurePath
from typing import Iterable

import numpy as np

from ceal_pipeline.frames.classes import detection_label
from ceal_pipeline.frames.entry_checks import first_copies, has_boolean
from ceal_pipeline.frames.file_checks import CHECK_LEVELS
from ceal_pipeline.frames.mmdet3d_dialects import Dialect, default_prefixes, detect_dialect, sequence_from_index
from ceal_pipeline.frames.result import FrameSourceResult

SOURCE = "mmdet3d"

#: Class tuples of mmdet3d's dataset classes, for info files without ``categories``.
KNOWN_CLASSES: dict[str, tuple[str, ...]] = {
    "kitti": ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc"),
    "waymo": ("Car", "Pedestrian", "Cyclist"),
    "nuscenes": ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                 "pedestrian", "traffic_cone", "barrier"),
    "lyft": ("car", "truck", "bus", "emergency_vehicle", "other_vehicle", "motorcycle", "bicycle",
             "pedestrian", "animal"),
}

_SPLIT_IN_NAME = re.compile(r"(?:^|[_\-.])(train|val|test|trainval)(?:[_\-.]|$)")


class InfoFileError(ValueError):
    """An info file that is not an mmdet3d v1.x ``{'metainfo', 'data_list'}`` file."""


#: Entries parsed together by the vectorised reader (bounded memory per step).
CHUNK_FRAMES = 4096


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: unpickling an info file creates ~10^3
    containers per frame, and the collections they trigger (each one walking
    every live object) make loading and parsing 2-4x slower. Nothing here
    creates reference cycles, so nothing is left for the collector."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def normalise_metainfo(metainfo: dict) -> dict:
    """``metainfo`` with lower-case keys: mmdet3d's own fixtures and older
    converters write ``DATASET: KITTI`` or ``CLASSES`` where v1.x writes
    ``dataset``/``classes``; a lower-case key wins over its upper-case twin."""
    if not isinstance(metainfo, dict):
        raise ValueError(f"'metainfo' is a {type(metainfo).__name__}, not a dict of dataset facts")
    normalised = {}
    for key, value in metainfo.items():
        lower = str(key).lower()
        if lower not in normalised or key == lower:
            normalised[lower] = value
    return normalised


def load_info_file(path: str | Path) -> dict:
    """The ``{'metainfo', 'data_list'}`` dict of a ``.pkl`` (or ``.json``) info file,
    its ``metainfo`` keys lower-cased (:func:`normalise_metainfo`)."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            info = json.loads(path.read_text())
        else:
            with open(path, "rb") as handle, gc_paused():
                info = pickle.load(handle)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise InfoFileError(f"info file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if isinstance(info, list) or not isinstance(info, dict) or "data_list" not in info:
        raise InfoFileError(
            f"info file {path} is not an mmdet3d v1.x info file (no 'data_list'); convert old infos with "
            "mmdet3d's tools/dataset_converters/update_infos_to_v2.py"
        )
    if not isinstance(info["data_list"], list):
        raise InfoFileError(f"info file {path}: 'data_list' is a {type(info['data_list']).__name__}, not a list of "
                            "frame entries; regenerate the info file with mmdet3d's converters")
    try:
        info["metainfo"] = normalise_metainfo(info.get("metainfo") or {})
    except ValueError as exc:
        raise InfoFileError(f"info file {path}: {exc}; fix its metainfo or regenerate the file") from exc
    return info


def find_info_files(root: str | Path, info: str | Path | Iterable[str | Path] | None = None) -> list[Path]:
    """The info file(s) to read: ``info`` (one or several, absolute or relative to
    ``root``), else every ``*.pkl`` directly in ``root``."""
    root = Path(root)
    if info is not None:
        paths = []
        for name in ([info] if isinstance(info, (str, Path)) else list(info)):
            path = Path(name) if Path(name).is_absolute() else root / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"info file {path} does not exist (pass --info relative to --root, or absolute)")
            paths.append(path)
        return paths
    files = sorted(root.glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"no *.pkl info file in {root}: pass the info file with info=/--info")
    return files


def box_convention(metainfo: dict, box_frame: str | None = None, box_origin_z: float | None = None,
                   camera_key: str | None = None, dialect: Dialect | None = None) -> tuple[str, float, str | None]:
    """``(frame, origin_z, camera_key)`` for an info file: frame ``"lidar"`` or
    ``"camera"``, the box origin's relative height (0 bottom, 0.5 centre) and the
    camera whose ``lidar2cam`` defines camera-frame boxes. ``dialect`` (from the
    entries' structure, :func:`~ceal_pipeline.frames.mmdet3d_dialects.detect_dialect`)
    decides; without it, the metainfo alone; the other arguments override."""
    dialect = dialect or detect_dialect(metainfo, [])
    frame = box_frame or dialect.box_frame
    if frame not in ("lidar", "camera"):
        raise ValueError(f"box_frame={frame!r}: use 'lidar' or 'camera'")
    origin = dialect.origin_z if box_origin_z is None else float(box_origin_z)
    return frame, origin, camera_key or dialect.ref_camera


def dataset_name(metainfo: dict, dialect: Dialect | None = None) -> str:
    """The info file's dataset name as written, else its dialect's (``SOURCE`` for a generic file)."""
    if metainfo.get("dataset"):
        return str(metainfo["dataset"])
    return dialect.classes_of if dialect is not None and dialect.classes_of else SOURCE


def class_names(metainfo: dict, classes: Iterable[str] | None = None,
                dialect: Dialect | None = None) -> dict[int, str]:
    """Raw label -> class name: ``classes`` (the caller's override, in label
    order), else ``metainfo['categories']``, else ``metainfo['classes']``, else
    the known class list of ``metainfo['dataset']`` or of the file's dialect
    (:data:`KNOWN_CLASSES`)."""
    if classes is not None:
        return dict(enumerate(str(c) for c in classes))
    categories = metainfo.get("categories")
    if isinstance(categories, dict) and categories:
        try:
            labels = {str(k): int(v) for k, v in categories.items()}
        except (TypeError, ValueError):
            raise ValueError(f"metainfo['categories'] must map class names to integer labels, got {categories!r}"
                             ) from None
        shared = sorted({v for v in labels.values() if v >= 0 and list(labels.values()).count(v) > 1})
        if shared:
            names = sorted(k for k, v in labels.items() if v == shared[0])
            raise ValueError(f"metainfo['categories'] gives label {shared[0]} to several classes ({', '.join(names)}); "
                             "each label must name one class")
        return {v: k for k, v in labels.items() if v >= 0}
    names = (metainfo.get("classes") or KNOWN_CLASSES.get(dataset_name(metainfo).lower())
             or KNOWN_CLASSES.get(dialect.classes_of if dialect is not None else "", ()))
    return dict(enumerate(str(c) for c in names))


def detector_label_of(raw_label: int, names: dict[int, str]) -> int | None:
    """Detector label of a raw info label, ``None`` when the object is dropped
    (label -1, no class name, or a class the detector does not learn)."""
    if raw_label < 0 or raw_label not in names:
        return None
    return detection_label(names[raw_label])


def unnamed_labels_message(unnamed: dict, where: str) -> str:
    """The loud explanation of labels without class names (count, values, fix)."""
    total = sum(unnamed.values())
    values = ", ".join(f"{v} (x{c})" for v, c in sorted(unnamed.items()))
    return (f"{total} objects in {where} have labels with no class name ({values}) and were dropped: the info "
            "file's metainfo has neither 'categories' nor 'classes' covering them and names no dataset with a "
            f"known class list ({', '.join(sorted(KNOWN_CLASSES))}); add metainfo['categories'] = "
            "{name: label}, or pass the class names in label order (classes=[...], CLI --classes)")


_ID_KEYS = ("token", "sample_idx", "sample_id")


def frame_id_of(entry: dict, index: int, prefix: str = "") -> str:
    """The frame id of ``data_list[index]``, exactly as written: ``prefix`` +
    ``token``, else ``sample_idx``, else ``sample_id`` (older converters), else the
    index when the entry has none of these keys. Never rewritten: the caller
    validates it (:func:`ceal_pipeline.frames.records.validate_frame_id`).

    Raises ``ValueError`` when the id key holds no usable value (``None``, an
    empty string, a list...), which would otherwise become an id like ``"None"``.
    """
    blank = None
    for key in _ID_KEYS:
        raw = entry.get(key)
        if raw is None:
            blank = blank or (key if key in entry else None)
            continue
        if isinstance(raw, bool) or not isinstance(raw, (str, int, np.integer)) or raw == "":
            raise ValueError(f"its {key} is {raw!r}, not a frame id: give every entry a token or sample_idx")
        return f"{prefix}{raw}"
    if blank is not None:
        raise ValueError(f"its {blank} is None and it has no other id: give every entry a token or sample_idx")
    return f"{prefix}{index}"


def seconds_of(values: list) -> np.ndarray:
    """Timestamps in seconds: micro- (Waymo) and nanoseconds are scaled, ``None`` is NaN.

    Raises ``ValueError`` when a value is not a number, or is infinite or
    negative (callers convert a chunk at once and retry a failing one entry by entry).
    """
    if has_boolean(values):
        bad = next(v for v in values if isinstance(v, (bool, np.bool_)))
        raise ValueError(f"timestamp {bad!r} is a boolean, not a number of seconds")
    try:
        t = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise ValueError(f"timestamp {bad!r} is not a number of seconds (or micro-/nanoseconds)") from None
    if t.ndim != 1:
        raise ValueError("timestamp is not a single number")
    invalid = np.isinf(t) | (t < 0)
    if invalid.any():
        raise ValueError(f"timestamp {t[invalid][0]!r} is not a time (negative or infinite)")
    # Epoch seconds are ~1.7e9; Waymo stores microseconds (~1e15), some exports nanoseconds.
    return np.where(t > 1e17, t * 1e-9, np.where(t > 1e14, t * 1e-6, t))


def _is_number(value) -> bool:
    if value is None:
        return True
    try:
        return np.asarray(value, dtype=np.float64).ndim == 0
    except (TypeError, ValueError):
        return False


def _resolve(root: Path, prefix: str | None, path: str) -> Path:
    p = PurePath(str(path))
    if p.is_absolute():
        return Path(p)
    return root / prefix / p if prefix else root / p


def resolve_paths(root: Path, prefix: str | None, paths: list) -> list[str]:
    """``str(_resolve(root, prefix, p))`` for each of ``paths`` (``""`` for none),
    by string concatenation where that gives the same normalised path; paths
    with ``.``/``..`` parts are normalised (``os.path.normpath``), so that
    :class:`~ceal_pipeline.frames.confinement.PathConfinement` sees where they really point."""
    base = str(_resolve(root, prefix, "x"))[:-1]
    out = []
    for path in paths:
        if not path:
            out.append("")
            continue
        path = str(path)
        if "//" in path or "/." in path or path.startswith(".") or path.endswith("/"):
            out.append(os.path.normpath(_resolve(root, prefix, path)))
        else:
            out.append(path if path.startswith("/") else base + path)
    return out


def sequence_of(entry: dict, lidar_path: str, frame_id: str, dialect: Dialect | None = None) -> str:
    """``scene_token``/``sequence_id``/``context_name``/``scene_name``, else what the
    dialect derives from the frame index (KITTI-layout Waymo), else the
    nuScenes-style log name before ``__`` in the LiDAR file name, else the frame."""
    for key in ("scene_token", "sequence_id", "context_name", "scene_name"):
        if entry.get(key):
            return str(entry[key])
    from_index = sequence_from_index(dialect, entry) if dialect is not None else None
    if from_index is not None:
        return from_index
    name = posixpath.basename(str(lidar_path).rstrip("/"))
    return name.split("__", 1)[0] if "__" in name else frame_id


def split_in_name(info_path: Path) -> str:
    """The split an info file's name states (``..._val.pkl``), else ``"train"``."""
    match = _SPLIT_IN_NAME.search(Path(info_path).stem)
    return match.group(1) if match else "train"


def iter_info_chunks(info_path: Path, root: Path, *, chunk_frames: int = CHUNK_FRAMES, check: str = "header",
                     timings: dict | None = None, **options):
    """:class:`~ceal_pipeline.frames.mmdet3d_columns.ParsedEntries` of one info
    file, ``chunk_frames`` entries at a time (options as :func:`read_frames`);
    ``timings["load_s"]`` receives the seconds spent loading the file."""
    from ceal_pipeline.frames.file_checks import FileChecks
    from ceal_pipeline.frames.mmdet3d_columns import InfoContext, chunk_entries, parse_entries

    started = time.perf_counter()
    info = load_info_file(info_path)
    if timings is not None:
        timings["load_s"] = time.perf_counter() - started
    if options.get("extra_roots") is not None:
        options["extra_roots"] = tuple(str(r) for r in options["extra_roots"])
    try:
        dialect = detect_dialect(info["metainfo"], info["data_list"])
        options["lidar_prefix"], options["camera_prefix"] = default_prefixes(
            dialect, root, options.get("lidar_prefix"), options.get("camera_prefix"))
        context = InfoContext(info_path=Path(info_path), root=Path(root), metainfo=info["metainfo"],
                              checks=FileChecks(check), dialect=dialect, **options)
    except ValueError as exc:
        raise InfoFileError(f"info file {info_path}: {exc}; fix its metainfo, or override the convention with "
                            "box_frame / box_origin_z / classes") from exc
    data_list = info.pop("data_list")
    del info
    for start, entries in chunk_entries(data_list, chunk_frames):
        yield parse_entries(entries, start, context)


def read_info_file(info_path: Path, root: Path, *, lidar_prefix=None, camera_prefix=None, check="header",
                   box_frame=None, box_origin_z=None, camera_key=None, frame_id_prefix="",
                   classes=None, extra_roots=None) -> FrameSourceResult:
    """Frames of one info file (see the module docstring)."""
    result = FrameSourceResult()
    # the loaded info is millions of objects: a collection triggered while parsing walks them all, for nothing
    with gc_paused():
        for parsed in iter_info_chunks(info_path, root, check=check, lidar_prefix=lidar_prefix,
                                       camera_prefix=camera_prefix, box_frame=box_frame, box_origin_z=box_origin_z,
                                       camera_key=camera_key, frame_id_prefix=frame_id_prefix, classes=classes,
                                       extra_roots=extra_roots):
            result.frames.extend(parsed.batch.records())
            result.quarantined.extend(parsed.quarantined)
            result.dropped_objects.update(parsed.dropped_objects)
            result.unnamed_labels.update(parsed.unnamed_labels)
    return result


def read_frames(root: str | Path, info: str | Path | list[str | Path] | None = None, *,
                lidar_prefix: str | None = None, camera_prefix: str | dict[str, str] | None = None,
                check: str = "header", box_frame: str | None = None, box_origin_z: float | None = None,
                camera_key: str | None = None, frame_id_prefix: str = "",
                classes: list[str] | tuple[str, ...] | None = None,
                extra_roots: list[str] | tuple[str, ...] | None = None) -> FrameSourceResult:
    """All frames of the info file(s) under ``root``.

    ``info``: the info file(s) (default: every ``*.pkl`` in ``root``);
    ``lidar_prefix`` / ``camera_prefix``: folders under ``root`` the entries'
    file names live in (``camera_prefix`` may map camera name -> folder, ``"*"``
    for the rest); ``check``: ``"exists"``, ``"header"`` (default: also file
    sizes and image headers) or ``"points"`` (decode every cloud);
    ``box_frame`` / ``box_origin_z`` / ``camera_key`` override the per-dataset
    box convention; ``frame_id_prefix`` keeps ids unique across datasets;
    ``classes`` names the raw labels in order when the info file does not;
    ``extra_roots``: folders outside ``root`` the info file may name files in
    (any other path outside ``root`` quarantines its frame).
    Labels without a class name are counted in ``unnamed_labels``.
    """
    if check not in CHECK_LEVELS:
        raise ValueError(f"check={check!r}: use one of {CHECK_LEVELS}")
    root = Path(root)
    result = FrameSourceResult()
    for info_path in find_info_files(root, info):
        result.extend(read_info_file(info_path, root, lidar_prefix=lidar_prefix, camera_prefix=camera_prefix,
                                     check=check, box_frame=box_frame, box_origin_z=box_origin_z,
                                     camera_key=camera_key, frame_id_prefix=frame_id_prefix, classes=classes,
                                     extra_roots=extra_roots))
    # an id given twice (in one file or two) names two frames: keep the first, as the catalog does
    result.frames, repeats = first_copies(result.frames)
    result.quarantined.extend(repeats)
    return result
