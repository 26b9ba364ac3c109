"""Bad inputs from outside the pipeline: the label inbox, ``ceal.yaml`` and the command line.

Four families join :mod:`.corpus`:

* ``inbox``: names, links, types, sizes and ambiguous content in the vendor's
  inbox; each entry must come back among the rejected deliveries naming it
  (``quarantined``), while a good delivery next to it is still ingested;
* ``readers``: values in a frame source that would be taken as they come
  (singular transforms, 1e300 coordinates, boolean timestamps, NUL bytes,
  repeated ids, two classes sharing a label, JSON nested 10^5 deep);
* ``config``: ``ceal.yaml`` and ``CEAL_*`` values, refused with an error naming the file;
* ``cli``: commands a user mistypes, refused with one line naming the argument,
  and nothing copied or created on the way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ceal_pipeline_tests.badinput.corpus import (
    CAR,
    EXPORTED,
    INFO,
    N_ENTRIES,
    Probe,
    _good_delivery,
    _good_entry,
    _openlabel,
    _read_info,
    _val,
    delivery_defect,
    entry_defect,
    write_info_dataset,
    _set,
)

GOOD_NAME = "good.json"


def _history_with_export(root: Path):
    """A history whose round 1 exported :data:`EXPORTED` (as the delivery cases of the corpus)."""
    from ceal_pipeline.core.history import AcquisitionHistory

    history = AcquisitionHistory(root / "history.duckdb", threads=1)
    ids = EXPORTED + ["seq1-frame009", "seq2-frame020"]
    history.register_frame_arrays(ids, [i.split("-")[0] for i in ids], np.arange(float(len(ids))),
                                  [f"/data/{i}.bin" for i in ids])
    history.start_round(1, seed=1, parameters={})
    history.save_selection(1, EXPORTED, np.arange(float(len(EXPORTED))))
    history.record_export(1, str(root / "outbox" / "round-0001"), EXPORTED)
    return history


def inbox_entry(make, names: str):
    """An inbox holding a good delivery in ``round-0001/`` and the bad entry ``make(inbox)``
    builds; the bad entry must be rejected naming ``names`` and the good one ingested."""
    def build(root: Path) -> Probe:
        from ceal_pipeline.export.label_ingest import ingest_inbox

        history = _history_with_export(root)
        inbox = root / "inbox"
        (inbox / "round-0001").mkdir(parents=True)
        (inbox / "round-0001" / GOOD_NAME).write_text(json.dumps(_good_delivery()))
        make(inbox)

        def run():
            ingested, rejected = ingest_inbox(history, inbox)
            if [d.delivery.path.name for d in ingested] != [GOOD_NAME] or not ingested[0].result.frames_added:
                raise AssertionError(f"the good delivery next to the bad entry was not ingested: {ingested}")
            outside = [r.path for r in rejected if not str(r.path).startswith(str(inbox))]
            if outside:
                raise AssertionError(f"files outside the inbox were read: {outside[:5]}")
            return rejected
        return Probe(run, names)
    return build


def _folder_with_delivery(name: str):
    def make(inbox: Path) -> None:
        (inbox / name).mkdir()
        (inbox / name / "acme.json").write_text(json.dumps(_good_delivery()))
    return make


def _link_to(target: str, name: str = "round-0002"):
    def make(inbox: Path) -> None:
        os.symlink(target, inbox / name)
    return make


def _file_link(inbox: Path) -> None:
    outside = inbox.parent / "outside.json"
    outside.write_text(json.dumps(_good_delivery()))
    os.symlink(outside, inbox / "round-0001" / "linked.json")


def _fifo(inbox: Path) -> None:
    os.mkfifo(inbox / "round-0001" / "pipe.json")


def _nested_folder(inbox: Path) -> None:
    (inbox / "round-0001" / "more").mkdir()
    (inbox / "round-0001" / "more" / "acme.json").write_text(json.dumps(_good_delivery()))


def _loose_file(inbox: Path) -> None:
    (inbox / "acme.json").write_text(json.dumps(_good_delivery()))


def _oversized(inbox: Path) -> None:
    from ceal_pipeline.bounded_input import MAX_FILE_BYTES

    with open(inbox / "round-0001" / "huge.json", "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk is used


def _deep_json(depth: int = 100_000) -> bytes:
    return b'{"openlabel": ' + b"[" * depth + b"]" * depth + b"}"


def _huge_array_pickle() -> bytes:
    """``{'data_list': numpy.ndarray((10**12,))}``: the allowed constructor called through REDUCE
    with a huge shape (8 TB if allocated)."""
    return b"(dp0\nS'data_list'\np1\ncnumpy\nndarray\n(I1000000000000\ntRs."


def _reconstruct_pickle() -> bytes:
    """``numpy.core.multiarray._reconstruct(ndarray, (10**11,), b'b')``: the other array constructor."""
    return b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntS'b'\ntR."


def _twice_openlabel() -> bytes:
    one = json.dumps(_good_delivery()["openlabel"])
    empty = json.dumps(_openlabel({EXPORTED[0]: []})["openlabel"])
    return f'{{"openlabel": {one}, "openlabel": {empty}}}'.encode()


def _rolled(degrees: float) -> list:
    """A cuboid val rolled by ``degrees`` about x (and yawed by CAR's yaw)."""
    val = _val(CAR)
    roll = np.radians(degrees) / 2
    qz, qw = val[5], val[6]
    # q = q_yaw * q_roll with q_roll = (sin r, 0, 0, cos r) (x, y, z, w)
    val[3:7] = [qw * np.sin(roll), qz * np.sin(roll), qz * np.cos(roll), qw * np.cos(roll)]
    return val


INBOX = [
    ("round_folder_too_large_for_the_history", inbox_entry(_folder_with_delivery("round-100000000000000000000"),
                                                           "round-100000000000000000000")),
    ("round_folder_just_beyond_int32", inbox_entry(_folder_with_delivery("round-2147483648"), "round-2147483648")),
    ("round_folder_not_zero_padded", inbox_entry(_folder_with_delivery("round-1"), "round-1")),
    ("folder_that_is_not_a_round", inbox_entry(_folder_with_delivery("deliveries-march"), "deliveries-march")),
    ("round_folder_linked_to_etc", inbox_entry(_link_to("/etc"), "round-0002")),
    ("delivery_linked_from_outside", inbox_entry(_file_link, "linked.json")),
    ("delivery_is_a_fifo", inbox_entry(_fifo, "pipe.json")),
    ("folder_inside_a_round_folder", inbox_entry(_nested_folder, "more")),
    ("delivery_outside_a_round_folder", inbox_entry(_loose_file, "acme.json")),
    ("delivery_larger_than_the_bound", inbox_entry(_oversized, "huge.json")),
    ("delivery_name_not_utf8", inbox_entry(lambda inbox: (inbox / "round-0001" / os.fsdecode(b"acme-\xff.json"))
                                           .write_text(json.dumps(_good_delivery())), "acme-")),
    ("round_folder_name_not_utf8", inbox_entry(_folder_with_delivery(os.fsdecode(b"round-\xff1")), "round-")),
    ("delivery_nested_100000_deep", delivery_defect(_deep_json())),
    ("delivery_pickle_huge_ndarray", delivery_defect(_huge_array_pickle(), name="acme.pkl")),
    ("delivery_pickle_huge_reconstruct", delivery_defect(_reconstruct_pickle(), name="acme.pkl")),
    ("delivery_openlabel_key_twice", delivery_defect(_twice_openlabel())),
    ("delivery_key_twice_inside_a_frame", delivery_defect(
        b'{"openlabel": {"metadata": {"schema_version": "1.0.0", "schema_version": "1.0.0"}, "frames": {}}}')),
    ("delivery_cuboid_rolled_45_degrees", delivery_defect(_good_delivery(**{EXPORTED[0]: [("car", _rolled(45.0))]}))),
    ("delivery_cuboid_pitched_upside_down", delivery_defect(_good_delivery(
        **{EXPORTED[0]: [("car", [8.0, 1.0, -0.75, 1.0, 0.0, 0.0, 0.0, 4.0, 1.8, 1.5])]}))),
    ("delivery_box_coordinate_1e300", delivery_defect(_good_delivery(
        **{EXPORTED[0]: [("car", _val([1e300, 1.0, -1.5, 4.0, 1.8, 1.5, 0.1]))]}))),
    ("delivery_mmdet3d_json_nested_deep", delivery_defect(b'{"data_list": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                                          name="acme-infos.json")),
]


# -- readers -------------------------------------------------------------------------------------------------

def _repeated_token(root: Path) -> Probe:
    """A token given to two entries of one info file: ``read_frames`` keeps the first."""
    entries = [_good_entry(i) for i in range(N_ENTRIES)]
    entries[2]["token"] = "frame-0"
    write_info_dataset(root, entries)
    return Probe(_read_info(root), "frame-2.bin", good_frames=N_ENTRIES - 1, because="duplicate frame id")


def _shared_category_label(root: Path) -> Probe:
    write_info_dataset(root, metainfo={"categories": {"car": 0, "truck": 0}})
    return Probe(_read_info(root), INFO)


def _big_point_file(root: Path) -> Probe:
    from ceal_pipeline.frames.entry_checks import MAX_POINT_FILE_BYTES

    write_info_dataset(root)
    with open(root / "lidar" / "frame-1.bin", "r+b") as handle:
        handle.truncate(MAX_POINT_FILE_BYTES + 16)  # sparse, whole points
    return Probe(_read_info(root, check="points"), "frame-1.bin", good_frames=N_ENTRIES - 1)


ZERO4 = [[0.0] * 4] * 4

READERS = [
    ("lidar2cam_all_zero", entry_defect(_set(("images", "CAM_FRONT", "lidar2cam"), ZERO4), because="singular")),
    ("cam2img_all_zero", entry_defect(_set(("images", "CAM_FRONT", "cam2img"), [[0.0] * 3] * 3),
                                      because="singular")),
    ("lidar2cam_rank_deficient", entry_defect(_set(("images", "CAM_FRONT", "lidar2cam"),
                                                   [[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]),
                                              because="singular")),
    ("ego2global_all_zero", entry_defect(_set(("ego2global",), ZERO4), because="not invertible")),
    ("box_coordinate_1e300", entry_defect(_set(("instances", 0, "bbox_3d"), [1e300, 1.0, -1.5, 4.0, 1.8, 1.5, 0.1]),
                                          because="beyond")),
    ("box_size_1e9", entry_defect(_set(("instances", 0, "bbox_3d"), [8.0, 1.0, -1.5, 1e9, 1.8, 1.5, 0.1]),
                                  because="beyond")),
    ("timestamp_true", entry_defect(_set(("timestamp",), True), because="boolean")),
    ("img_path_with_nul_byte", entry_defect(_set(("images", "CAM_FRONT", "img_path"), "frame-1\x00.jpg"),
                                            because="NUL byte")),
    ("lidar_path_with_nul_byte", entry_defect(_set(("lidar_points", "lidar_path"), "frame-1.bin\x00x"),
                                              because="NUL byte")),
    ("token_repeated_in_one_info_file", _repeated_token),
    ("categories_share_a_label", _shared_category_label),
    ("point_file_over_the_size_bound_at_check_points", _big_point_file),
]

def annotation_bytes(content):
    """Frame 0033644's box file replaced by the bytes ``content(parsed file)``."""
    def build(root: Path) -> Probe:
        from ceal_pipeline_tests.badinput.corpus import _aimotive_copy, _read_aimotive

        sequence = _aimotive_copy(root)
        path = sequence / "dynamic" / "box" / "3d_body" / "frame_0033644.json"
        path.write_bytes(content(json.loads(path.read_text())))
        return Probe(_read_aimotive(root), "frame_0033644.json", good_frames=2)
    return build


def calibration_bytes(content: bytes):
    """The sequence's calibration.json replaced by ``content``: its frames are quarantined naming the file."""
    def build(root: Path) -> Probe:
        from ceal_pipeline_tests.badinput.corpus import _aimotive_copy, _read_aimotive

        sequence = _aimotive_copy(root)
        (sequence / "sensor" / "calibration" / "calibration.json").write_bytes(content)
        return Probe(_read_aimotive(root), "calibration", good_frames=0)
    return build


def _aimotive_object(field: str, value):
    def content(parsed: dict) -> bytes:
        parsed["CapturedObjects"][0][field] = value
        return json.dumps(parsed).encode()
    return content


AIMOTIVE_READERS = [
    ("annotation_origin_1e300", annotation_bytes(_aimotive_object("BoundingBox3D Origin X", 1e300))),
    ("annotation_extent_true", annotation_bytes(_aimotive_object("BoundingBox3D Extent X", True))),
    ("calibration_nested_100000_deep", calibration_bytes(b'{"F_MIDLONGRANGECAM_CL": ' + b"[" * 100_000
                                                         + b"]" * 100_000 + b"}")),
    ("annotation_nested_100000_deep", annotation_bytes(lambda c: b'{"CapturedObjects": ' + b"[" * 100_000
                                                       + b"]" * 100_000 + b"}")),
    ("annotation_key_twice", annotation_bytes(lambda c: b'{"CapturedObjects": [], "CapturedObjects": '
                                              + json.dumps(c["CapturedObjects"]).encode() + b"}")),
]


# -- ceal.yaml and CEAL_* ------------------------------------------------------------------------------------

def config_defect(text: bytes, environ: dict | None = None):
    """``ceal.yaml`` holding ``text`` (with ``environ`` as the process environment)."""
    def build(root: Path) -> Probe:
        from ceal_pipeline.configuration import load_project_config

        path = root / "ceal.yaml"
        path.write_bytes(text)
        return Probe(lambda: load_project_config(path, environ={"CEAL_HOME": str(root), **(environ or {})}),
                     str(path) if environ is None else next(iter(environ)))
    return build


def _deep_yaml(depth: int) -> bytes:
    return b"round: " + b"[" * depth + b"]" * depth + b"\n"


CONFIG = [
    ("preset_is_a_list", config_defect(b"preset: [cpu-small]\n")),
    ("preset_is_a_mapping", config_defect(b"preset: {name: gpu}\n")),
    ("not_utf8", config_defect(b"round:\n  k: 3 # caf\xe9\n")),
    ("nul_byte_in_the_file", config_defect(b"round:\n  k: 3\x00\n")),
    ("nul_byte_in_a_path", config_defect(b'source: {kind: mmdet3d, root: "/data\\0/x"}\n')),
    ("nul_byte_in_a_variable", config_defect(b"", environ={"CEAL_DATA_ROOT": "/data\x00/x"})),
    ("yaml_nested_100000_deep", config_defect(_deep_yaml(100_000))),
    ("yaml_nested_20_deep", config_defect(_deep_yaml(20))),
    ("duplicate_key_in_a_section", config_defect(b"round:\n  k: 3\n  k: 30\n")),
    ("duplicate_section", config_defect(b"round:\n  k: 3\nround:\n  temperature: 0.5\n")),
    ("k_is_true", config_defect(b"round:\n  k: true\n")),
    ("shard_size_is_yes", config_defect(b"round:\n  shard_size: yes\n")),
    ("prior_is_false", config_defect(b"round:\n  prior: false\n")),
    ("temperature_is_inf", config_defect(b"round:\n  temperature: .inf\n")),
    ("prune_floor_is_nan", config_defect(b"round:\n  prune_floor: .nan\n")),
    ("k_is_10_to_the_12", config_defect(b"round:\n  k: 1000000000000\n")),
    ("seed_labeled_beyond_int32", config_defect(b"source:\n  seed_labeled: 4294967296\n")),
]


# -- the command line ----------------------------------------------------------------------------------------

class CliRefusal(ValueError):
    """A command that exited non-zero with a message and no traceback (the expected answer)."""


def _cli(argv: list[str], environ: dict, names: str, must_not_exist: list[Path] = ()):
    def run():
        from ceal_pipeline.cli import main
        from ceal_pipeline.configuration import project_config

        saved = {k: os.environ.get(k) for k in environ}
        os.environ.update(environ)
        project_config.cache_clear()
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse (2) or a refusal with its message (1)
                    code = exc.code if isinstance(exc.code, int) else 1
                    err.write("" if isinstance(exc.code, int) else str(exc.code))
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
            project_config.cache_clear()
        created = [str(p) for p in must_not_exist if p.exists() or p.is_symlink()]
        if created:
            raise AssertionError(f"`ceal {' '.join(argv)}` created {created} before refusing")
        if code == 0:
            return []
        raise CliRefusal(f"exit {code}: {err.getvalue().strip()} {out.getvalue().strip()}")
    return Probe(run, names)


def _labels_ingest(round_text: str, names: str, history: str = "ok", delivery: bytes | None = None):
    def build(root: Path) -> Probe:
        _history_with_export(root)
        file = root / "acme.json"
        file.write_bytes(json.dumps(_good_delivery()).encode() if delivery is None else delivery)
        history_path = {"ok": root / "history.duckdb", "folder": root, "new": root / "new" / "history.duckdb"}[history]
        argv = ["labels", "ingest", str(file), "--format", "openlabel", "--round", round_text,
                "--history", str(history_path), "--inbox", str(root / "inbox")]
        return _cli(argv, {"CEAL_HOME": str(root)}, names,
                    must_not_exist=[root / "inbox", root / "new"])
    return build


def _command(argv_of, names: str):
    def build(root: Path) -> Probe:
        return _cli(argv_of(root), {"CEAL_HOME": str(root)}, names)
    return build


CLI = [
    ("labels_ingest_round_minus_one", _labels_ingest("-1", "--round")),
    ("labels_ingest_round_beyond_int32", _labels_ingest("100000000000000000000", "--round")),
    ("labels_ingest_round_not_a_number", _labels_ingest("one", "--round")),
    ("labels_ingest_history_is_a_folder", _labels_ingest("1", "is a folder", history="folder")),
    ("labels_ingest_history_does_not_exist", _labels_ingest("1", "no acquisition history", history="new")),
    ("labels_ingest_malformed_delivery_is_not_copied", _labels_ingest("1", "acme.json", delivery=b"{not json")),
    ("vendor_selfcheck_root_missing", _command(
        lambda root: ["vendor", "selfcheck", "--source", "mmdet3d", "--root", str(root / "nonexistent"),
                      "--format", "openlabel"], "nonexistent")),
    ("round_rounds_minus_one", _command(lambda root: ["round", "--rounds", "-1"], "--rounds")),
    ("round_rounds_zero", _command(lambda root: ["round", "--rounds", "0"], "--rounds")),
    ("demo_frames_40", _command(lambda root: ["demo", "--frames", "40", "--home", str(root / "demo")], "--frames")),
    ("export_withdraw_history_missing", _command(
        lambda root: ["export", "withdraw", "--round", "1", "--reason", "x", "--history", str(root / "none.duckdb")],
        "none.duckdb")),
    ("labels_retire_never_labeled_frame", lambda root: _retire_unlabeled(root)),
]


def _retire_unlabeled(root: Path) -> Probe:
    _history_with_export(root)
    return _cli(["labels", "retire", "--frame", EXPORTED[0], "--reason", "left the source",
                 "--history", str(root / "history.duckdb")], {"CEAL_HOME": str(root)}, EXPORTED[0])


__all__ = ["AIMOTIVE_READERS", "CLI", "CONFIG", "INBOX", "READERS", "CliRefusal"]
