"""The one conversion between a vendor's cuboids and the pipeline's boxes, checked against
the conventions the source readers resolve (aiMotive quaternions, nuScenes centre origin)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.export.mmdet3d_format import parse_mmdet3d_delivery
from ceal_pipeline.export.openlabel import cuboid_val, parse_openlabel_delivery
from ceal_pipeline.export.vendor_boxes import (
    InvalidDeliveredBoxes,
    pipeline_boxes_to_vendor,
    vendor_boxes_to_pipeline,
)
from ceal_pipeline.export.vendor_inbox import delivery_bytes
from ceal_pipeline.frames.aimotive import parse_boxes
from ceal_pipeline.frames.box_conventions import quaternion_wxyz_to_yaw, wrap_angle
from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline_tests.frames.conftest import DATASETS

AIMOTIVE = DATASETS / "aimotive-sequence"
NUSCENES_INFO = DATASETS / "nuscenes-sample" / "n015-2018-07-24-11-22-45+0800.pkl"

boxes_strategy = st.lists(
    st.tuples(
        st.floats(-80, 80), st.floats(-80, 80), st.floats(-3, 3),
        st.floats(0.2, 20), st.floats(0.2, 5), st.floats(0.3, 5), st.floats(-np.pi, np.pi - 1e-9),
    ),
    min_size=1, max_size=12,
)


def _through(fmt: str, boxes: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    payload = delivery_bytes({"f-1": (boxes, names)}, fmt, "test")
    parsed = json.loads(payload) if fmt == "openlabel" else pickle.loads(payload)
    parse = parse_openlabel_delivery if fmt == "openlabel" else parse_mmdet3d_delivery
    return parse(parsed, Path(f"delivery.{fmt}"))["f-1"]


@pytest.mark.parametrize("fmt", ["openlabel", "mmdet3d"])
@settings(max_examples=60, deadline=None)
@given(rows=boxes_strategy, data=st.data())
def test_pipeline_boxes_survive_a_delivery_in_either_format(fmt, rows, data):
    boxes = np.asarray(rows, dtype=np.float64)
    names = tuple(data.draw(st.sampled_from(DETECTION_CLASSES)) for _ in rows)

    back, back_names = _through(fmt, boxes, names)

    assert back_names == names
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-9)
    assert np.abs(wrap_angle(back[:, 6] - boxes[:, 6])).max() < 1e-9


def test_an_openlabel_cuboid_is_centre_quaternion_xyzw_then_full_sizes():
    # A car 4 m long, 2 m wide, 1.5 m high standing on z = -1.8, heading +y (yaw 90 degrees).
    bottom = np.array([[10.0, 5.0, -1.8, 4.0, 2.0, 1.5, np.pi / 2]])
    val = cuboid_val(pipeline_boxes_to_vendor(bottom)[0])
    np.testing.assert_allclose(val, [10, 5, -1.05, 0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4), 4, 2, 1.5], atol=1e-12)


@pytest.mark.skipif(not AIMOTIVE.is_dir(), reason=f"{AIMOTIVE} absent (the shared datasets folder)")
def test_openlabel_cuboids_carry_aimotives_own_centre_and_heading():
    """The aiMotive reader turns a centre + W-X-Y-Z quaternion into a bottom-centre box; an
    exported cuboid must give back the file's own centre, extent and heading."""
    box_file = sorted(AIMOTIVE.rglob("3d_body/frame_*.json"))[0]
    objects = json.loads(box_file.read_text())["CapturedObjects"]
    boxes, labels = parse_boxes(box_file, {})
    kept = [o for o in objects if o["ObjectType"].lower() in ("car", "truck", "van", "bus", "pickup")][: len(boxes)]
    assert len(kept) == len(boxes) > 0

    vals = np.asarray([cuboid_val(b) for b in pipeline_boxes_to_vendor(boxes)])

    centre = np.asarray([[o[f"BoundingBox3D Origin {a}"] for a in "XYZ"] for o in kept])
    extent = np.asarray([[o[f"BoundingBox3D Extent {a}"] for a in "XYZ"] for o in kept])
    heading = quaternion_wxyz_to_yaw(np.asarray([[o[f"BoundingBox3D Orientation Quat {a}"] for a in "WXYZ"]
                                                 for o in kept]))
    np.testing.assert_allclose(vals[:, :3], centre, atol=1e-4)  # float32 catalog precision
    np.testing.assert_allclose(vals[:, 7:10], extent, atol=1e-5)
    cuboid_yaw = 2 * np.arctan2(vals[:, 5], vals[:, 6])
    assert np.abs(wrap_angle(cuboid_yaw - heading)).max() < 1e-6


@pytest.mark.skipif(not NUSCENES_INFO.is_file(), reason=f"{NUSCENES_INFO} absent (the shared datasets folder)")
def test_mmdet3d_bbox_3d_is_the_nuscenes_infos_gravity_centre_box():
    """The nuScenes infos' bbox_3d has the gravity centre as origin; what we export in the
    info format must be that same box, and ingesting it must give the reader's box."""
    from ceal_pipeline.frames.sources import read_source

    frame = read_source("mmdet3d", NUSCENES_INFO.parent, info=NUSCENES_INFO.name).frames[0]
    source = pickle.loads(NUSCENES_INFO.read_bytes())["data_list"][0]["instances"]
    wanted = {"car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian"}
    categories = pickle.loads(NUSCENES_INFO.read_bytes())["metainfo"]["categories"]
    names = {v: k for k, v in categories.items()}
    source_boxes = np.asarray([i["bbox_3d"] for i in source if names.get(i["bbox_label_3d"]) in wanted])

    exported = pipeline_boxes_to_vendor(frame.boxes)

    np.testing.assert_allclose(exported, source_boxes, atol=1e-4)
    back, _ = vendor_boxes_to_pipeline(exported, ["car"] * len(exported), where="test")
    np.testing.assert_allclose(back, frame.boxes, atol=1e-5)


@pytest.mark.parametrize(
    "box, name, reason",
    [
        ([0, 0, 0, np.nan, 1, 1, 0], "car", "NaN or infinite"),
        ([0, 0, 0, 4, 0, 1, 0], "car", "zero or negative size"),
        ([0, 0, 0, 4, 2, -1, 0], "car", "zero or negative size"),
        ([0, 0, 0, 4, 2, 1, 0], "traffic_cone", "unknown class names ['traffic_cone']"),
    ],
)
def test_unusable_delivered_boxes_are_refused_naming_the_file_and_the_fix(box, name, reason):
    with pytest.raises(InvalidDeliveredBoxes, match=r"delivery\.json frame f-1: .*") as caught:
        vendor_boxes_to_pipeline(np.asarray([box], float), [name], where="delivery.json frame f-1")
    assert reason in str(caught.value) and "vendor" in str(caught.value)
