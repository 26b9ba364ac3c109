"""Label deliveries read from the inbox: strict parsing, each refusal with its file and reason."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from ceal_pipeline.cli.demo_vendor import simulate_vendor
from ceal_pipeline.export import ExportedFrame, read_label_deliveries, write_label_delivery, write_vendor_export
from ceal_pipeline.export.vendor_inbox import delivery_folder
from ceal_pipeline.frames.records import FrameRecord

BOXES = np.asarray([[10.0, 2.0, -1.8, 4.2, 1.9, 1.5, 0.3], [-5.0, 1.0, -1.7, 0.6, 0.6, 1.8, -2.0]])
LABELS = {"seq01-000004": (BOXES, ("car", "pedestrian")), "seq02-000017": (BOXES[:0], ())}


def _openlabel(inbox, round_index=0, name="acme"):
    return write_label_delivery(inbox, round_index, LABELS, vendor="acme-labels", name=name)


@pytest.mark.parametrize("fmt", ["openlabel", "mmdet3d"])
def test_a_delivery_in_either_format_is_read_as_boxes_per_frame_with_round_vendor_and_checksum(tmp_path, fmt):
    path = write_label_delivery(tmp_path, 3, LABELS, fmt=fmt, vendor="acme-labels")

    [delivery], rejected = read_label_deliveries(tmp_path)

    assert rejected == [] and path.parent.name == "round-0003"
    assert (delivery.round_index, delivery.format, delivery.path) == (3, fmt, path)
    assert delivery.vendor == "acme-labels"  # the annotator of the parsed file, a (bounded) pickle too
    assert delivery.frame_ids == tuple(LABELS)
    np.testing.assert_allclose(delivery.labels["seq01-000004"][0], BOXES, atol=1e-12)
    assert delivery.labels["seq01-000004"][1] == ("car", "pedestrian")
    assert delivery.labels["seq02-000017"][0].shape == (0, 7)  # labeled, and empty
    assert len(delivery.sha256) == 64


def _rewrite(path, edit):
    payload = json.loads(path.read_text())
    edit(payload["openlabel"])
    path.write_text(json.dumps(payload))


def _first_cuboid(doc):
    return doc["frames"]["0"]["objects"]["0"]["object_data"]["cuboid"][0]


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: _first_cuboid(d)["val"].__setitem__(7, 0.0), "zero or negative size"),
        (lambda d: _first_cuboid(d)["val"].__setitem__(0, float("nan")), "NaN or infinite"),
        (lambda d: _first_cuboid(d)["val"].__setitem__(0, None), "NaN or infinite"),
        (lambda d: d["objects"]["0"].__setitem__("type", "Vehicle.Car"), "unknown class names ['Vehicle.Car']"),
        (lambda d: _first_cuboid(d).__setitem__("coordinate_system", "world"), "deliver cuboids in 'LIDAR'"),
        (lambda d: _first_cuboid(d)["val"].pop(), "cuboid val must be 10 numbers"),
        (lambda d: d["frames"]["0"]["frame_properties"].pop("external_id"), "no frame_properties.external_id"),
        (lambda d: d["frames"]["0"]["frame_properties"].__setitem__("external_id", "../x"), "is not valid"),
        (lambda d: d["metadata"].__setitem__("schema_version", "0.9"), "only 1.x is read"),
        (lambda d: d["frames"].clear(), "no 'frames'"),
        (lambda d: d["objects"].__setitem__("0", 5), "unexpected structure"),
        (lambda d: d["frames"].__setitem__("9", d["frames"]["0"]), "frame seq01-000004 appears twice in the file"),
        (lambda d: d["frames"]["0"].__setitem__("frame_properties", []), "unexpected structure"),
    ],
)
def test_a_bad_openlabel_delivery_is_refused_whole_with_its_file_and_reason(tmp_path, edit, reason):
    bad = _openlabel(tmp_path, name="bad")
    _openlabel(tmp_path, name="good")
    _rewrite(bad, edit)

    deliveries, rejected = read_label_deliveries(tmp_path)

    assert [d.path.name for d in deliveries] == ["good.json"]
    assert [r.path for r in rejected] == [bad]
    assert reason in rejected[0].reason and str(bad) in rejected[0].reason


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"{not json", "not a readable info file"),
        (b'{"data_list": []}', "metainfo.categories"),
        (b'{"metainfo": {"categories": {"car": 0}}, "data_list": [{"instances": []}]}', "has no 'token'"),
        (b'{"metainfo": {"categories": {"car": 0}, "box_origin": [0.5, 0.5, 0]}, "data_list": []}',
         "not the gravity centre"),
        (b'{"metainfo": {"categories": {"car": 0, "barrier": 9}}, "data_list": [{"token": "seq01-000004", '
         b'"instances": [{"bbox_3d": [1, 2, 0, 1, 1, 1, 0], "bbox_label_3d": 9}]}]}', "unknown class names ['barrier']"),
        (b'{"metainfo": {"categories": {"car": 0}}, "data_list": [{"token": "seq01-000004", '
         b'"instances": [{"bbox_3d": [1, 2, 0, 1, 1], "bbox_label_3d": 0}]}]}', "has 5 values, not 7"),
        (b'{"metainfo": {"categories": {"car": 0}}, "data_list": [{"token": "seq01-000004", '
         b'"instances": [{"bbox_3d": [1, 2, 0, 1, 1, 1, 0], "bbox_label_3d": null}]}]}', "unexpected structure"),
        (b"not a delivery", "not a delivery file"),
    ],
)
def test_a_bad_mmdet3d_or_unknown_file_is_refused_with_its_reason(tmp_path, content, reason):
    name = "bad.txt" if content == b"not a delivery" else "bad.json"
    path = delivery_folder(tmp_path, 0) / name
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    deliveries, rejected = read_label_deliveries(tmp_path)

    assert deliveries == [] and reason in rejected[0].reason


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_delivered_pickle_cannot_run_code(tmp_path, capsys):
    path = delivery_folder(tmp_path, 0) / "evil.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"metainfo": {"categories": {"car": 0}}, "data_list": [_Exploit()]}))

    deliveries, rejected = read_label_deliveries(tmp_path)

    assert deliveries == [] and "refusing to load builtins.print" in rejected[0].reason
    assert "pwned" not in capsys.readouterr().out


def test_files_in_flight_are_skipped_and_a_folder_that_is_not_a_round_is_rejected_not_ignored(tmp_path):
    _openlabel(tmp_path)
    (delivery_folder(tmp_path, 0) / ".acme.json.123.tmp").write_text("{")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.json").write_text("{")

    deliveries, rejected = read_label_deliveries(tmp_path)

    assert len(deliveries) == 1
    assert [(r.path.name, "not a round folder" in r.reason) for r in rejected] == [("notes", True)]


def test_the_simulated_vendor_answers_each_export_once_in_openlabel_with_the_ground_truth(tmp_path):
    outbox, inbox = tmp_path / "outbox", tmp_path / "inbox"
    write_vendor_export(outbox, 0, "v1", [ExportedFrame(f, f[:5], 1.0) for f in LABELS])

    def truth(ids):
        return [FrameRecord(f, f[:5], 0.0, "/x.bin", boxes=LABELS[f][0].astype(np.float32),
                            labels=np.asarray([0, 2][: len(LABELS[f][0])])) for f in ids]

    first = simulate_vendor(outbox, inbox, truth)
    second = simulate_vendor(outbox, inbox, truth)

    assert [p.relative_to(inbox).as_posix() for p in first] == ["round-0000/delivery.json"] and second == []
    [delivery], _ = read_label_deliveries(inbox)
    assert delivery.format == "openlabel" and delivery.frame_ids == tuple(LABELS)
    assert delivery.labels["seq01-000004"][1] == ("car", "pedestrian")
