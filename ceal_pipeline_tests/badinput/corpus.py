"""A corpus of malformed inputs, and the one verdict each must get.

Every :class:`BadInput` builds one defect in a fresh folder (an info-file entry,
an aiMotive annotation or calibration, a point cloud, an image, a score shard, a
pool file, a label delivery) and returns a :class:`Probe`: the call that reads
it the way the pipeline does, and the file that the answer must name.
:func:`verdict` runs the probe and sorts the answer into one of

* ``quarantined``: the bad frame (or delivery file) was set aside with a reason
  naming the file, and the rest of the source was still read;
* ``rejected``: a clean error (an exception of the project's own vocabulary, not
  a bare ``KeyError``/``ZeroDivisionError``...) whose message names the file;
* ``traceback``: anything else raised (a crash the user cannot act on);
* ``accepted``: no quarantine, no error: the defect went through silently;
* ``lost``: quarantined, but good frames of the same source were lost with it.

Only the first two are acceptable. ``python -m ceal_pipeline_tests.badinput``
prints the counts by family and verdict.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
AIMOTIVE_SAMPLE = DATASETS / "aimotive-sample"
AIMOTIVE_SEQUENCE = "20210901-194123-00.37.12-00.37.27@Yoda"

GOOD_VERDICTS = ("quarantined", "rejected")
#: Exceptions that are a crash, not an answer, whatever their message says.
BARE_ERRORS = (KeyError, IndexError, AttributeError, ZeroDivisionError, TypeError, UnicodeError, RecursionError,
               AssertionError, NameError, OverflowError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class Probe:
    """How to read one bad input: ``run()`` returns a result or raises; ``names``
    is the file the answer must name; ``good_frames`` how many frames the rest
    of the source still holds (``None``: not a frame source)."""

    run: Callable[[], object]
    names: str
    good_frames: int | None = None
    #: words the quarantine reason must hold (a frame quarantined for another reason does not count)
    because: str = ""


@dataclass(frozen=True)
class BadInput:
    name: str
    family: str
    build: Callable[[Path], Probe]
    needs: str = ""  # "aimotive": the real sample must be on this machine


@dataclass(frozen=True)
class Verdict:
    kind: str
    detail: str


def verdict(probe: Probe) -> Verdict:
    """Run ``probe`` and classify the answer (see the module docstring)."""
    try:
        answer = probe.run()
    except BARE_ERRORS as exc:
        return Verdict("traceback", "".join(traceback.format_exception(exc))[-1500:])
    except Exception as exc:  # noqa: BLE001 - classifying every answer is the point
        message = str(exc)
        if probe.names in message:
            return Verdict("rejected", f"{type(exc).__name__}: {message}")
        return Verdict("traceback", f"{type(exc).__name__} not naming {probe.names}: {message}"
                       + "".join(traceback.format_exception(exc))[-800:])
    from ceal_pipeline.frames.result import FrameSourceResult

    if isinstance(answer, FrameSourceResult):
        named = [q for q in answer.quarantined if q.reason and (probe.names in q.path or probe.names in q.reason)
                 and probe.because in q.reason]
        if not named:
            return Verdict("accepted", f"{len(answer.frames)} frames, quarantined: {answer.quarantined}")
        if probe.good_frames is not None and len(answer.frames) != probe.good_frames:
            return Verdict("lost", f"{len(answer.frames)} frames read, {probe.good_frames} expected; {named[0]}")
        return Verdict("quarantined", f"{named[0].frame_id}: {named[0].reason}")
    rejections = list(answer or [])
    named = [r for r in rejections if probe.names in str(r.path) and r.reason]
    if named:
        return Verdict("quarantined", f"{named[0].path}: {named[0].reason}")
    return Verdict("accepted", repr(answer)[:500])


# -- mmdet3d info files ---------------------------------------------------------------------------------------

INFO = "infos_train.pkl"
N_ENTRIES = 3
LIDAR2CAM = [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
CAM2IMG = [[20.0, 0.0, 16.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]


def _good_entry(i: int) -> dict:
    return {
        "token": f"frame-{i}", "timestamp": 1_700_000_000.0 + i, "scene_token": "scene-a",
        "lidar_points": {"lidar_path": f"frame-{i}.bin", "num_pts_feats": 4},
        "images": {"CAM_FRONT": {"img_path": f"frame-{i}.jpg", "cam2img": CAM2IMG, "lidar2cam": LIDAR2CAM,
                                 "width": 32, "height": 16}},
        "instances": [{"bbox_3d": [8.0, 1.0, -1.5, 4.0, 1.8, 1.5, 0.1], "bbox_label_3d": 0}],
    }


def write_info_dataset(root: Path, entries: list | None = None, metainfo: dict | None = None) -> Path:
    """A 3-frame mmdet3d dataset: ``lidar/frame-i.bin``, ``camera/frame-i.jpg``, ``infos_train.pkl``."""
    from PIL import Image

    (root / "lidar").mkdir(parents=True, exist_ok=True)
    (root / "camera").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N_ENTRIES):
        points = np.column_stack([rng.uniform(-20, 20, (64, 3)), rng.uniform(0, 1, (64, 1))]).astype(np.float32)
        points.tofile(root / "lidar" / f"frame-{i}.bin")
        Image.new("RGB", (32, 16), (40, 80, 120)).save(root / "camera" / f"frame-{i}.jpg", format="JPEG")
    info = root / INFO
    info.write_bytes(pickle.dumps({
        "metainfo": {"categories": {"car": 0}, "dataset": "ceal-synthetic"} if metainfo is None else metainfo,
        "data_list": [_good_entry(i) for i in range(N_ENTRIES)] if entries is None else entries}))
    return info


def _read_info(root: Path, check: str = "header", **options):
    from ceal_pipeline.frames.mmdet3d_info import read_frames

    return lambda: read_frames(root, check=check, lidar_prefix="lidar", camera_prefix="camera", **options)


def entry_defect(mutate: Callable[[dict], None], because: str = ""):
    """A defect in entry 1: ``mutate(entry)`` edits it in place."""
    def build(root: Path) -> Probe:
        entries = [_good_entry(i) for i in range(N_ENTRIES)]
        mutate(entries[1])
        write_info_dataset(root, entries)
        return Probe(_read_info(root), INFO, good_frames=N_ENTRIES - 1, because=because)
    return build


def entry_replaced_by(value):
    """Entry 1 replaced by something that is not an entry at all."""
    def build(root: Path) -> Probe:
        entries = [_good_entry(i) for i in range(N_ENTRIES)]
        entries[1] = value
        write_info_dataset(root, entries)
        return Probe(_read_info(root), INFO, good_frames=N_ENTRIES - 1)
    return build


def file_defect(relative: str, damage: Callable[[Path], None], check: str = "header"):
    """A defect in a file the info names (``lidar/frame-1.bin``, ``camera/frame-1.jpg``)."""
    def build(root: Path) -> Probe:
        write_info_dataset(root)
        damage(root / relative)
        return Probe(_read_info(root, check), Path(relative).name, good_frames=N_ENTRIES - 1)
    return build


def info_file_defect(write: Callable[[Path], None], name: str = INFO):
    """A defect of the info file as a whole: a clean error naming it is the answer."""
    def build(root: Path) -> Probe:
        write_info_dataset(root)
        (root / INFO).unlink()
        write(root / name)
        return Probe(_read_info(root, info=name), name)
    return build


def _set(path: tuple, value):
    def mutate(entry: dict):
        target = entry
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(key: str):
    return lambda entry: entry.pop(key) and None


def _box(values):
    return _set(("instances", 0, "bbox_3d"), values)


def _nan_points(path: Path) -> None:
    np.full((64, 4), np.nan, dtype=np.float32).tofile(path)


def _truncate(n_bytes: int):
    return lambda path: path.write_bytes(path.read_bytes()[:n_bytes])


def _replace_with(data: bytes):
    return lambda path: path.write_bytes(data)


def _make_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _duplicate_ids_in_catalog(root: Path) -> Probe:
    """Two info files naming the same frame id: the catalog keeps one, quarantines the other."""
    from ceal_pipeline.catalog import FrameCatalog

    write_info_dataset(root / "source")
    shutil.copy(root / "source" / INFO, root / "source" / "infos_val.pkl")

    def run():
        catalog = FrameCatalog(root / "catalog")
        catalog.ingest("mmdet3d", root / "source", lidar_prefix="lidar", camera_prefix="camera", workers=1)
        from ceal_pipeline.frames.result import FrameSourceResult

        return FrameSourceResult(frames=catalog.records(list(catalog.frame_ids())), quarantined=catalog.quarantined())
    return Probe(run, "infos_val.pkl", good_frames=N_ENTRIES)


def _duplicate_ids_in_inspect(root: Path) -> Probe:
    """``ceal inspect`` reports a repeated id as a quarantined copy naming the file it repeats."""
    import contextlib
    import io

    from ceal_pipeline.cli import main

    entries = [_good_entry(i) for i in range(N_ENTRIES)]
    entries[2]["token"] = "frame-0"
    write_info_dataset(root, entries)

    def run():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["inspect", "--source", "mmdet3d", "--root", str(root), "--lidar-prefix", "lidar",
                         "--camera-prefix", "camera", "--frames", "--json"])
        from ceal_pipeline.frames.records import QuarantinedFrame
        from ceal_pipeline.frames.result import FrameSourceResult

        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        summary = lines[-1]
        if code != 0 or summary.get("duplicate_ids") != 1:
            return FrameSourceResult()
        quarantined = [QuarantinedFrame(line["id"], line["quarantined"], line["path"])
                       for line in lines if "quarantined" in line and "id" in line]
        return FrameSourceResult(frames=[None] * summary["frames"], quarantined=quarantined)
    return Probe(run, "frame-0.bin", good_frames=N_ENTRIES - 1)


def _outside_root_allowed_only_by_configuration(root: Path) -> Probe:
    """A LiDAR path in a sibling folder: quarantined unless ``extra_roots`` names that folder."""
    from ceal_pipeline.frames.mmdet3d_info import read_frames

    write_info_dataset(root / "data")
    shared = root / "shared-sweeps"
    shared.mkdir()
    shutil.copy(root / "data" / "lidar" / "frame-1.bin", shared / "frame-1.bin")
    entries = [_good_entry(i) for i in range(N_ENTRIES)]
    entries[1]["lidar_points"]["lidar_path"] = str(shared / "frame-1.bin")
    (root / "data" / INFO).write_bytes(pickle.dumps({"metainfo": {"categories": {"car": 0}}, "data_list": entries}))

    def run():
        allowed = read_frames(root / "data", lidar_prefix="lidar", camera_prefix="camera", extra_roots=[shared])
        if len(allowed.frames) != N_ENTRIES:
            raise AssertionError(f"extra_roots did not allow {shared}: {allowed.quarantined}")
        return read_frames(root / "data", lidar_prefix="lidar", camera_prefix="camera")
    return Probe(run, "frame-1.bin", good_frames=N_ENTRIES - 1, because="outside the dataset root")


MMDET3D = [
    ("entry_is_a_string", entry_replaced_by("frame-1")),
    ("entry_is_a_list", entry_replaced_by([_good_entry(1)])),
    ("entry_is_none", entry_replaced_by(None)),
    ("instances_is_a_string", entry_defect(_set(("instances",), "car"))),
    ("instances_is_a_dict", entry_defect(_set(("instances",), {"bbox_3d": [1, 2, 3, 4, 5, 6, 7]}))),
    ("instances_is_none", entry_defect(_set(("instances",), None))),
    ("instance_is_a_string", entry_defect(_set(("instances",), ["car"]))),
    ("instance_is_none", entry_defect(_set(("instances",), [None]))),
    ("instance_without_bbox_3d", entry_defect(_set(("instances",), [{"bbox_label_3d": 0}]))),
    ("lidar_points_is_a_string", entry_defect(_set(("lidar_points",), "frame-1.bin"))),
    ("lidar_points_is_a_list", entry_defect(_set(("lidar_points",), ["frame-1.bin", 4]))),
    ("lidar_points_missing", entry_defect(_delete("lidar_points"))),
    ("lidar_path_is_a_number", entry_defect(_set(("lidar_points", "lidar_path"), 42))),
    ("num_pts_feats_zero", entry_defect(_set(("lidar_points", "num_pts_feats"), 0))),
    ("num_pts_feats_negative", entry_defect(_set(("lidar_points", "num_pts_feats"), -4))),
    ("num_pts_feats_two", entry_defect(_set(("lidar_points", "num_pts_feats"), 2))),
    ("num_pts_feats_text", entry_defect(_set(("lidar_points", "num_pts_feats"), "four"))),
    ("timestamp_text", entry_defect(_set(("timestamp",), "yesterday"))),
    ("timestamp_list", entry_defect(_set(("timestamp",), [1, 2]))),
    ("timestamp_dict", entry_defect(_set(("timestamp",), {"s": 1}))),
    ("timestamp_infinite", entry_defect(_set(("timestamp",), float("inf")))),
    ("timestamp_negative", entry_defect(_set(("timestamp",), -5.0))),
    ("token_none_without_other_id", entry_defect(_set(("token",), None))),
    ("token_empty", entry_defect(_set(("token",), ""))),
    ("token_with_trailing_newline", entry_defect(_set(("token",), "frame-1\n"))),
    ("token_non_ascii", entry_defect(_set(("token",), "frameü1"))),
    ("token_sql_looking", entry_defect(_set(("token",), "x'; DROP TABLE frames;--"))),
    ("token_path_traversal", entry_defect(_set(("token",), "../../etc/passwd"))),
    ("token_formula", entry_defect(_set(("token",), "=HYPERLINK(\"x\")"))),
    ("token_too_long", entry_defect(_set(("token",), "f" * 300))),
    ("token_is_a_list", entry_defect(_set(("token",), ["frame-1"]))),
    ("bbox_too_short", entry_defect(_box([1.0, 2.0, 3.0, 4.0, 5.0]))),
    ("bbox_nan", entry_defect(_box([8.0, float("nan"), -1.5, 4.0, 1.8, 1.5, 0.1]))),
    ("bbox_text", entry_defect(_box([8.0, "left", -1.5, 4.0, 1.8, 1.5, 0.1]))),
    ("bbox_negative_size", entry_defect(_box([8.0, 1.0, -1.5, -4.0, 1.8, 1.5, 0.1]))),
    ("bbox_zero_size", entry_defect(_box([8.0, 1.0, -1.5, 4.0, 0.0, 1.5, 0.1]))),
    ("bbox_none", entry_defect(_box(None))),
    ("label_text", entry_defect(_set(("instances", 0, "bbox_label_3d"), "car"))),
    ("label_fractional", entry_defect(_set(("instances", 0, "bbox_label_3d"), 0.5))),
    ("label_none", entry_defect(_set(("instances", 0, "bbox_label_3d"), None))),
    ("cam2img_nan", entry_defect(_set(("images", "CAM_FRONT", "cam2img"), [[float("nan")] * 3] * 3))),
    ("cam2img_2x2", entry_defect(_set(("images", "CAM_FRONT", "cam2img"), [[1.0, 0.0], [0.0, 1.0]]))),
    ("cam2img_text", entry_defect(_set(("images", "CAM_FRONT", "cam2img"), "identity"))),
    ("lidar2cam_nan", entry_defect(_set(("images", "CAM_FRONT", "lidar2cam"), [[float("nan")] * 4] * 4))),
    ("lidar2cam_3x3_without_cam2ego", entry_defect(_set(("images", "CAM_FRONT", "lidar2cam"), CAM2IMG))),
    ("images_is_a_string", entry_defect(_set(("images",), "CAM_FRONT"))),
    ("image_entry_is_a_string", entry_defect(_set(("images", "CAM_FRONT"), "frame-1.jpg"))),
    ("image_width_text", entry_defect(_set(("images", "CAM_FRONT", "width"), "wide"))),
    ("image_width_negative", entry_defect(_set(("images", "CAM_FRONT", "width"), -32))),
    ("ego2global_3x3", entry_defect(_set(("ego2global",), CAM2IMG))),
    ("ego2global_nan", entry_defect(_set(("ego2global",), [[float("nan")] * 4] * 4))),
    ("lidar_path_dot_dot_escape", entry_defect(_set(("lidar_points", "lidar_path"), "../../../../../etc/passwd"),
                                               because="outside the dataset root")),
    ("lidar_path_absolute_outside_root", entry_defect(_set(("lidar_points", "lidar_path"), "/etc/passwd"),
                                                      because="outside the dataset root")),
    ("img_path_dot_dot_escape", entry_defect(_set(("images", "CAM_FRONT", "img_path"), "../../../etc/hostname"),
                                             because="outside the dataset root")),
    ("lidar_path_in_a_folder_outside_root", _outside_root_allowed_only_by_configuration),
    ("duplicate_frame_id_across_info_files", _duplicate_ids_in_catalog),
    ("duplicate_frame_id_reported_by_inspect", _duplicate_ids_in_inspect),
    ("info_garbage_bytes", info_file_defect(lambda p: p.write_bytes(b"\x00garbage" * 10))),
    ("info_zero_bytes", info_file_defect(lambda p: p.write_bytes(b""))),
    ("info_old_list_style", info_file_defect(lambda p: p.write_bytes(pickle.dumps([{"token": "a"}])))),
    ("info_data_list_is_a_dict", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": {}, "data_list": {"a": 1}})))),
    ("info_data_list_none", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": {}, "data_list": None})))),
    ("info_metainfo_is_a_string", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": "kitti", "data_list": []})))),
    ("info_categories_not_integers", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": {"categories": {"car": "zero"}}, "data_list": []})))),
    ("info_box_frame_unknown", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": {"box_frame": "sideways"}, "data_list": []})))),
    ("info_box_origin_text", info_file_defect(
        lambda p: p.write_bytes(pickle.dumps({"metainfo": {"box_origin_z": "high"}, "data_list": []})))),
    ("info_json_malformed", info_file_defect(lambda p: p.write_text("{\"data_list\": ["), name="infos_train.json")),
]


POINTS_AND_IMAGES = [
    ("bin_all_nan_at_check_points", "points", file_defect("lidar/frame-1.bin", _nan_points, check="points")),
    ("bin_not_whole_points", "points", file_defect("lidar/frame-1.bin", _truncate(64 * 16 - 6))),
    ("bin_zero_bytes", "points", file_defect("lidar/frame-1.bin", _replace_with(b""))),
    ("bin_is_a_folder", "points", file_defect("lidar/frame-1.bin", _make_dir)),
    ("bin_missing", "points", file_defect("lidar/frame-1.bin", Path.unlink)),
    ("bin_all_nan_at_load", "points", lambda root: _load_points_probe(root, _nan_points)),
    ("bin_not_whole_points_at_load", "points", lambda root: _load_points_probe(root, _truncate(100))),
    ("bin_empty_at_load", "points", lambda root: _load_points_probe(root, _replace_with(b""))),
    ("jpeg_zero_bytes", "images", file_defect("camera/frame-1.jpg", _replace_with(b""))),
    ("jpeg_garbage_at_check_points", "images", file_defect("camera/frame-1.jpg", _replace_with(b"\xff\xd8garbage" * 50),
                                                           check="points")),
    ("jpeg_truncated_at_check_points", "images", file_defect("camera/frame-1.jpg", _truncate(200), check="points")),
    ("jpeg_is_a_folder", "images", file_defect("camera/frame-1.jpg", _make_dir)),
    ("jpeg_garbage_in_inspect_check_points", "images", lambda root: _inspect_probe(root, "camera/frame-1.jpg")),
]


def _load_points_probe(root: Path, damage) -> Probe:
    """``load_points`` of a record whose file broke after cataloguing (check ``exists``)."""
    from ceal_pipeline.frames.mmdet3d_info import read_frames
    from ceal_pipeline.frames.points import load_points

    write_info_dataset(root)
    record = next(r for r in read_frames(root, lidar_prefix="lidar", camera_prefix="camera").frames
                  if r.frame_id == "frame-1")
    damage(root / "lidar" / "frame-1.bin")
    return Probe(lambda: load_points(record), "frame-1.bin")


def _inspect_probe(root: Path, relative: str) -> Probe:
    import contextlib
    import io

    from ceal_pipeline.cli import main
    from ceal_pipeline.frames.records import QuarantinedFrame
    from ceal_pipeline.frames.result import FrameSourceResult

    write_info_dataset(root)
    (root / relative).write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * 20)

    def run():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            main(["inspect", "--source", "mmdet3d", "--root", str(root), "--lidar-prefix", "lidar", "--camera-prefix",
                  "camera", "--check", "points", "--frames", "--json"])
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        return FrameSourceResult(frames=[None] * lines[-1]["frames"], quarantined=[
            QuarantinedFrame(line["id"], line["quarantined"], line["path"]) for line in lines if "quarantined" in line
            and "id" in line])
    return Probe(run, Path(relative).name, good_frames=N_ENTRIES - 1)


# -- aiMotive --------------------------------------------------------------------------------------------------

def _aimotive_copy(root: Path, sequence_name: str = AIMOTIVE_SEQUENCE) -> Path:
    source = AIMOTIVE_SAMPLE / "data" / "train" / "nighttime" / AIMOTIVE_SEQUENCE
    target = root / "data" / "train" / "nighttime" / sequence_name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("radar", "*.zip", "*.yml"))
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def _read_aimotive(root: Path, check: str = "header"):
    from ceal_pipeline.frames.aimotive import read_frames

    return lambda: read_frames(root, check=check)


def annotation_defect(edit: Callable[[dict], object]):
    """A defect in frame 0033644's box file; ``edit(content)`` edits it or returns the new content."""
    def build(root: Path) -> Probe:
        sequence = _aimotive_copy(root)
        path = sequence / "dynamic" / "box" / "3d_body" / "frame_0033644.json"
        content = json.loads(path.read_text())
        replaced = edit(content)
        path.write_text(json.dumps(content if replaced is None else replaced))
        return Probe(_read_aimotive(root), "frame_0033644.json", good_frames=2)
    return build


def _object(field: str, value):
    def edit(content: dict):
        content["CapturedObjects"][0][field] = value
    return edit


def calibration_defect(edit: Callable[[dict], None]):
    """A defect in the sequence's calibration: its frames are quarantined naming the file."""
    def build(root: Path) -> Probe:
        sequence = _aimotive_copy(root)
        path = sequence / "sensor" / "calibration" / "calibration.json"
        content = json.loads(path.read_text())
        edit(content["F_MIDLONGRANGECAM_CL"])
        path.write_text(json.dumps(content))
        return Probe(_read_aimotive(root), "calibration", good_frames=0)
    return build


def _sequence_named(name: str):
    """A second sequence whose folder name makes invalid ids: only its frames are quarantined."""
    def build(root: Path) -> Probe:
        _aimotive_copy(root)
        _aimotive_copy(root, name)
        return Probe(_read_aimotive(root), "nighttime/", good_frames=3, because="is not valid")
    return build


def _catalog_with_sequence_named(name: str):
    """The frame catalog ingesting an aiMotive root where one sequence folder's name is not UTF-8."""
    def build(root: Path) -> Probe:
        from ceal_pipeline.catalog import FrameCatalog
        from ceal_pipeline.frames.result import FrameSourceResult

        _aimotive_copy(root / "source")
        _aimotive_copy(root / "source", name)

        def run():
            catalog = FrameCatalog(root / "catalog")
            catalog.ingest("aimotive", root / "source", workers=1)
            return FrameSourceResult(frames=catalog.records(list(catalog.frame_ids())),
                                     quarantined=catalog.quarantined())
        return Probe(run, "nighttime/", good_frames=3, because="is not valid")
    return build


def _aimotive_file(relative: str, damage, check: str = "header"):
    def build(root: Path) -> Probe:
        sequence = _aimotive_copy(root)
        damage(sequence / relative)
        return Probe(_read_aimotive(root, check), Path(relative).name, good_frames=2)
    return build


def _identity_quaternion_zero(content: dict) -> None:
    for axis in "WXYZ":
        content["CapturedObjects"][0][f"BoundingBox3D Orientation Quat {axis}"] = 0.0


AIMOTIVE = [
    ("annotation_objects_not_a_list", annotation_defect(lambda c: {"CapturedObjects": {"a": 1}})),
    ("annotation_object_is_a_string", annotation_defect(lambda c: {"CapturedObjects": ["car"]})),
    ("annotation_is_a_list", annotation_defect(lambda c: [c])),
    ("annotation_without_objects_key", annotation_defect(lambda c: {"objects": []})),
    ("annotation_extent_negative", annotation_defect(_object("BoundingBox3D Extent X", -4.0))),
    ("annotation_extent_zero", annotation_defect(_object("BoundingBox3D Extent Y", 0.0))),
    ("annotation_origin_text", annotation_defect(_object("BoundingBox3D Origin X", "yesterday"))),
    ("annotation_origin_nan", annotation_defect(_object("BoundingBox3D Origin Z", float("nan")))),
    ("annotation_zero_quaternion", annotation_defect(_identity_quaternion_zero)),
    ("annotation_zero_bytes", _aimotive_file("dynamic/box/3d_body/frame_0033644.json", _replace_with(b""))),
    ("calibration_focal_length_text", calibration_defect(lambda c: c.update(focal_length_px=["wide", "tall"]))),
    ("calibration_xi_text", calibration_defect(lambda c: c.update(model="mei", xi="yesterday"))),
    ("calibration_distortion_text", calibration_defect(lambda c: c.update(distortion_coeffs=["a", "b"]))),
    ("calibration_singular_extrinsic", calibration_defect(
        lambda c: (c.pop("RT_sensor_from_body"), c.update(RT_body_from_sensor=[[0.0] * 4] * 4)))),
    ("calibration_nan_extrinsic", calibration_defect(
        lambda c: c.update(RT_sensor_from_body=[[float("nan")] * 4] * 4))),
    ("calibration_resolution_text", calibration_defect(lambda c: c.update(image_resolution_px="big"))),
    ("sequence_folder_non_ascii", _sequence_named("20210901-seqü@Yoda")),
    ("sequence_folder_with_space", _sequence_named("2021 09 01 seq")),
    ("sequence_folder_not_utf8", _sequence_named(os.fsdecode(b"seq-\xfc-latin1"))),
    ("sequence_folder_not_utf8_in_the_catalog", _catalog_with_sequence_named(os.fsdecode(b"seq-\xfc-latin1"))),
    ("laz_zero_bytes", _aimotive_file("dynamic/raw-revolutions/frame_0033644.laz", _replace_with(b""))),
    ("laz_garbage", _aimotive_file("dynamic/raw-revolutions/frame_0033644.laz", _replace_with(b"LASF" + b"\0" * 400))),
    ("laz_truncated_at_check_points", _aimotive_file("dynamic/raw-revolutions/frame_0033644.laz", _truncate(150_000),
                                                     check="points")),
    ("aimotive_jpeg_zero_bytes", _aimotive_file("sensor/camera/M_FISHEYE_L/M_FISHEYE_L_0033644.jpg",
                                                _replace_with(b""))),
    ("aimotive_jpeg_truncated_at_check_points", _aimotive_file("sensor/camera/M_FISHEYE_L/M_FISHEYE_L_0033644.jpg",
                                                               _truncate(3000), check="points")),
]


# -- score shards and the published pool ---------------------------------------------------------------------

SHARD_FRAMES = [f"seq{i // 5}-frame{i:03d}" for i in range(10)]
MODEL = "detector-r1"


def _history(root: Path):
    from ceal_pipeline.core.history import AcquisitionHistory

    history = AcquisitionHistory(root / "history.duckdb", threads=1)
    history.register_frame_arrays(SHARD_FRAMES, [i.split("-")[0] for i in SHARD_FRAMES])
    history.save_candidate_pool(1, frame_ids=SHARD_FRAMES, n_shards=1)
    return history


def _shard_rows(**overrides) -> dict:
    rows = {"frame_id": list(SHARD_FRAMES), "score": [float(i) / 10 for i in range(len(SHARD_FRAMES))],
            "round": [1] * len(SHARD_FRAMES), "shard": [0] * len(SHARD_FRAMES),
            "model_version": [MODEL] * len(SHARD_FRAMES),
            "acquisition_fn": ["localization_entropy"] * len(SHARD_FRAMES), "run_id": ["run-1"] * len(SHARD_FRAMES)}
    rows.update(overrides)
    return rows


def shard_defect(rows: Callable[[], dict] | None = None, raw: bytes | None = None, name: str = "s000.parquet"):
    """A score shard written by hand (columns ``rows()``, or the bytes ``raw``), merged for round 1."""
    def build(root: Path) -> Probe:
        import datetime

        import pyarrow as pa
        import pyarrow.parquet as pq

        history = _history(root)
        path = root / name
        if raw is not None:
            path.write_bytes(raw)
        else:
            columns = rows()
            n = len(next(iter(columns.values())))
            columns.setdefault("scored_at", [datetime.datetime(2026, 1, 1)] * n)
            pq.write_table(pa.table(columns), path)
        return Probe(lambda: history.ingest_score_shards({0: path}, round=1, model_version=MODEL), name)
    return build


def _exchange_defect(write: Callable[[Path], None], read: str):
    def build(root: Path) -> Probe:
        from ceal_pipeline.core.history.shards import ShardExchange

        exchange = ShardExchange(root / "shards")
        exchange.round_dir(1).mkdir(parents=True)
        target = exchange.pool_path(1) if read == "pool" else exchange.scores_path(1, 0)
        write(target)
        call = (lambda: exchange.published_pool(1)) if read == "pool" else (lambda: exchange.shard_stats(1, 0))
        return Probe(call, target.name)
    return build


def _parquet_with_metadata(metadata: bytes | None):
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"frame_id": ["a"], "shard": [0]})
        if metadata is not None:
            table = table.replace_schema_metadata({b"ceal": metadata})
        pq.write_table(table, path)
    return write


SHARDS = [
    ("shard_garbage_bytes", shard_defect(raw=b"PAR1 not parquet PAR1")),
    ("shard_zero_bytes", shard_defect(raw=b"")),
    ("shard_missing_columns", shard_defect(lambda: {"frame_id": list(SHARD_FRAMES), "score": [1.0] * 10})),
    ("shard_for_another_round", shard_defect(lambda: _shard_rows(round=[2] * 10))),
    ("shard_for_another_shard", shard_defect(lambda: _shard_rows(shard=[3] * 10))),
    ("shard_scored_by_another_model", shard_defect(lambda: _shard_rows(model_version=["evil-model"] * 10))),
    ("shard_mixes_models", shard_defect(lambda: _shard_rows(model_version=[MODEL] * 9 + ["evil-model"]))),
    ("shard_nan_score", shard_defect(lambda: _shard_rows(score=[float("nan")] + [0.5] * 9))),
    ("shard_infinite_score", shard_defect(lambda: _shard_rows(score=[float("inf")] + [0.5] * 9))),
    ("shard_score_as_text", shard_defect(lambda: _shard_rows(score=["high"] * 10))),
    ("shard_null_frame_id", shard_defect(lambda: _shard_rows(frame_id=[None] + SHARD_FRAMES[1:]))),
    ("shard_duplicate_frame", shard_defect(lambda: _shard_rows(frame_id=SHARD_FRAMES[:9] + SHARD_FRAMES[:1]))),
    ("shard_frame_outside_the_pool", shard_defect(lambda: _shard_rows(frame_id=SHARD_FRAMES[:9] + ["seq9-frame999"]))),
    ("shard_missing_a_pool_frame", shard_defect(
        lambda: {k: v[:9] for k, v in _shard_rows().items()})),
    ("shard_without_rows", shard_defect(lambda: {k: v[:0] for k, v in _shard_rows().items()})),
    ("shard_null_round", shard_defect(lambda: _shard_rows(round=[None] * 10))),
    ("pool_file_garbage", _exchange_defect(lambda p: p.write_bytes(b"not parquet"), "pool")),
    ("pool_file_without_metadata", _exchange_defect(_parquet_with_metadata(None), "pool")),
    ("pool_file_metadata_not_json", _exchange_defect(_parquet_with_metadata(b"{not json"), "pool")),
    ("pool_file_metadata_a_list", _exchange_defect(_parquet_with_metadata(b"[1, 2]"), "pool")),
    ("shard_stats_metadata_not_json", _exchange_defect(_parquet_with_metadata(b"{round: 1"), "shard")),
    ("shard_stats_garbage", _exchange_defect(lambda p: p.write_bytes(b"\x00" * 64), "shard")),
]


# -- label deliveries ---------------------------------------------------------------------------------------

EXPORTED = ["seq0-frame000", "seq0-frame001", "seq1-frame005"]
CAR = [8.0, 1.0, -1.5, 4.0, 1.8, 1.5, 0.1]


def _openlabel(frames: dict) -> dict:
    """An OpenLABEL delivery: ``{frame id: [(class, cuboid val)]}`` as the vendor formats write it."""
    objects, scene_frames = {}, {}
    for k, (frame_id, cuboids) in enumerate(frames.items()):
        frame_objects = {}
        for name, val in cuboids:
            key = str(len(objects))
            objects[key] = {"name": f"{name}-{key}", "type": name}
            frame_objects[key] = {"object_data": {"cuboid": [{"name": "shape", "coordinate_system": "LIDAR",
                                                                "val": val}]}}
        scene_frames[str(k)] = {"frame_properties": {"external_id": frame_id}, "objects": frame_objects}
    return {"openlabel": {"metadata": {"schema_version": "1.0.0", "annotator": "acme"}, "objects": objects,
                          "frames": scene_frames}}


def _val(box=CAR) -> list:
    """OpenLABEL cuboid ``[x, y, z, qx, qy, qz, qw, sx, sy, sz]`` of a pipeline box (centre z)."""
    x, y, z, length, width, height, yaw = box
    return [x, y, z + height / 2, 0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)), length, width, height]


def _good_delivery(**overrides) -> dict:
    return _openlabel({f: [("car", _val())] for f in EXPORTED} | overrides)


def delivery_defect(content: bytes | str | object, name: str = "acme.json", round_folder: str = "round-0001",
                    exported=EXPORTED):
    """A delivery file in the inbox's ``round_folder``, ingested into a history whose
    round 1 exported ``exported`` (``None``: round 1 has no export)."""
    def build(root: Path) -> Probe:
        from ceal_pipeline.core.history import AcquisitionHistory
        from ceal_pipeline.export.label_ingest import ingest_inbox

        history = AcquisitionHistory(root / "history.duckdb", threads=1)
        ids = EXPORTED + ["seq1-frame009", "seq2-frame020"]  # registered; the last two never exported
        history.register_frame_arrays(ids, [i.split("-")[0] for i in ids])
        if exported is not None:
            history.start_round(1, seed=1, parameters={})
            history.save_selection(1, exported, np.arange(float(len(exported))))
            history.record_export(1, str(root / "outbox" / "round-0001"), exported)
        folder = root / "inbox" / round_folder
        folder.mkdir(parents=True)
        data = content if isinstance(content, (bytes, str)) else json.dumps(content)
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)

        def run():
            ingested, rejected = ingest_inbox(history, root / "inbox")
            return rejected
        return Probe(run, name)
    return build


DELIVERIES = [
    ("delivery_not_json", delivery_defect("{openlabel: [")),
    ("delivery_zero_bytes", delivery_defect(b"")),
    ("delivery_not_utf8", delivery_defect(b"\xff\xfe{\"openlabel\": 1}")),
    ("delivery_is_a_list", delivery_defect([_good_delivery()])),
    ("delivery_openlabel_not_a_mapping", delivery_defect({"openlabel": [1, 2]})),
    ("delivery_without_frames", delivery_defect({"openlabel": {"metadata": {"schema_version": "1.0.0"}}})),
    ("delivery_for_an_unexported_round", delivery_defect(_good_delivery(), exported=None)),
    ("delivery_in_a_folder_of_another_round", delivery_defect(_good_delivery(), round_folder="round-0002")),
    ("delivery_of_never_exported_frames", delivery_defect(_good_delivery(**{"seq1-frame009": [("car", _val())]}))),
    ("delivery_invalid_frame_id", delivery_defect(_openlabel({"x'; DROP TABLE labels;--": [("car", _val())]}))),
    ("delivery_frame_id_with_newline", delivery_defect(_openlabel({"seq0-frame000\n": [("car", _val())]}))),
    ("delivery_unknown_class", delivery_defect(_good_delivery(**{"seq0-frame000": [("unicorn", _val())]}))),
    ("delivery_nan_box", delivery_defect(_good_delivery(
        **{"seq0-frame000": [("car", _val([float("nan"), 1.0, -1.5, 4.0, 1.8, 1.5, 0.1]))]}))),
    ("delivery_zero_size_box", delivery_defect(_good_delivery(
        **{"seq0-frame000": [("car", _val([8.0, 1.0, -1.5, 0.0, 1.8, 1.5, 0.1]))]}))),
    ("delivery_negative_size_box", delivery_defect(_good_delivery(
        **{"seq0-frame000": [("car", _val([8.0, 1.0, -1.5, 4.0, -1.8, 1.5, 0.1]))]}))),
    ("delivery_cuboid_too_short", delivery_defect(_good_delivery(**{"seq0-frame000": [("car", [1.0, 2.0])]}))),
    ("delivery_cuboid_as_text", delivery_defect(_good_delivery(**{"seq0-frame000": [("car", "a box")]}))),
    ("delivery_wrong_extension", delivery_defect(_good_delivery(), name="acme.txt")),
    ("delivery_pickle_that_runs_code", delivery_defect(
        b"cos\nsystem\n(S'echo pwned'\ntR.", name="acme.pkl")),
    ("delivery_mmdet3d_without_data_list", delivery_defect({"metainfo": {"categories": {"car": 0}}},
                                                           name="acme-infos.json")),
]


def all_cases() -> list[BadInput]:
    """Every bad input of the corpus, named ``<family>/<defect>``."""
    cases = [BadInput(name, "mmdet3d", build) for name, build in MMDET3D]
    cases += [BadInput(name, family, build) for name, family, build in POINTS_AND_IMAGES]
    cases += [BadInput(name, "aimotive", build, needs="aimotive") for name, build in AIMOTIVE]
    cases += [BadInput(name, "shards", build) for name, build in SHARDS]
    cases += [BadInput(name, "deliveries", build) for name, build in DELIVERIES]
    from ceal_pipeline_tests.badinput import untrusted  # the inbox, readers, ceal.yaml and the CLI

    cases += [BadInput(name, "inbox", build) for name, build in untrusted.INBOX]
    cases += [BadInput(name, "readers", build) for name, build in untrusted.READERS]
    cases += [BadInput(name, "aimotive", build, needs="aimotive") for name, build in untrusted.AIMOTIVE_READERS]
    cases += [BadInput(name, "config", build) for name, build in untrusted.CONFIG]
    cases += [BadInput(name, "cli", build) for name, build in untrusted.CLI]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return cases


def available(case: BadInput) -> bool:
    return case.needs != "aimotive" or (AIMOTIVE_SAMPLE / "data").is_dir()


def try_case(case: BadInput, folder: Path) -> Verdict:
    """Build ``case`` in an empty ``folder`` and judge the answer."""
    folder.mkdir(parents=True, exist_ok=True)
    return verdict(case.build(folder))


__all__ = ["BadInput", "Probe", "Verdict", "all_cases", "available", "try_case", "verdict", "write_info_dataset",
           "GOOD_VERDICTS"]
