"""Exports a vendor can act on: sensor URIs, calibration, time, pose, ontology, pre-labels,
in the project's manifest, ASAM OpenLABEL 1.0 and the mmdet3d info format."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest

from ceal_pipeline.export import (
    ExportedFrame,
    PreLabels,
    SensorUriRule,
    UnmappablePath,
    export_files,
    frame_tasks,
    read_vendor_export,
    write_vendor_export,
)
from ceal_pipeline.export.file_names import safe_file_stem
from ceal_pipeline.export.openlabel import LIDAR_CS
from ceal_pipeline.export.vendor_formats import openlabel_name
from ceal_pipeline.frames.records import DETECTION_CLASSES, CameraRecord, FrameRecord, LidarFormat

LIDAR2CAM = np.array([[0, -1, 0, 0.1], [0, 0, -1, 1.5], [1, 0, 0, -0.5], [0, 0, 0, 1]], dtype=np.float64)
K = np.array([[1000.0, 0, 960], [0, 1000, 540], [0, 0, 1]])
POSE = np.array([[0, -1, 0, 411.3], [1, 0, 0, 1180.9], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
BOXES = np.array([[10.0, 5.0, -1.8, 4.0, 2.0, 1.5, np.pi / 2]])


@pytest.fixture
def records(tmp_path):
    root = tmp_path / "dataset"
    front = CameraRecord("CAM_FRONT", str(root / "cam" / "front+0800.jpg"), K, LIDAR2CAM, 1920, 1080,
                         "opencv_pinhole", (0.1, -0.05, 0.0, 0.0, 0.01))
    fisheye = CameraRecord("M_FISHEYE_L", str(root / "cam" / "fisheye.jpg"), K, LIDAR2CAM, 1280, 960, "mei",
                           (1.2, 0.1, 0.01, 0.0, 0.0, 0.0))  # xi + 5, as aiMotive's calibration gives them
    return root, [
        FrameRecord("seq01:000004", "seq01", 1532402927.647951, str(root / "lidar" / "000004.laz"),
                    LidarFormat("laz"), (front, fisheye), ego_pose=POSE),
        FrameRecord("seq01:000005", "seq01", float("nan"), str(root / "lidar" / "000005.laz"), LidarFormat("laz"),
                    (front,)),
    ]


def _export(tmp_path, records, base="s3://bucket/prefix", pre=True):
    root, frames = records
    uris = SensorUriRule(str(root), base)
    pre_labels = {"seq01:000004": PreLabels(BOXES, ("car",), np.array([0.8]))} if pre else None
    tasks = frame_tasks(frames, uris, pre_labels)
    rows = [ExportedFrame(f.frame_id, f.sequence_id, 1.0) for f in frames]
    return write_vendor_export(tmp_path / "outbox", 2, "det-v1", rows, files=export_files(2, "det-v1", tasks, uris))


def test_sensor_files_become_uris_under_the_base_by_their_path_below_the_dataset_root(records):
    root, frames = records
    rule = SensorUriRule(str(root), "s3://bucket/prefix/")

    assert rule.uri(frames[0].lidar_path) == "s3://bucket/prefix/lidar/000004.laz"
    assert rule.uri(frames[0].cameras[0].path) == "s3://bucket/prefix/cam/front+0800.jpg"  # not percent-encoded
    assert SensorUriRule(str(root)).uri(frames[0].lidar_path) == (root / "lidar" / "000004.laz").resolve().as_uri()
    with pytest.raises(UnmappablePath, match="not under the dataset root.*set the exporter's dataset_root"):
        rule.uri("/elsewhere/x.laz")


def test_every_vendor_file_is_in_the_drop_and_checksummed_by_the_manifest(tmp_path, records):
    export = _export(tmp_path, records)

    files = json.loads(export.manifest_path.read_text())["files"]
    assert set(files) == {"selected_frames.csv", "selected_frames.jsonl", "project.json", "tasks.jsonl",
                          "mmdet3d_infos.pkl", openlabel_name("seq01:000004"), openlabel_name("seq01:000005")}
    assert not any(":" in name or "@" in name for name in files)  # every tool and URL takes the names as they are
    for name, digest in files.items():
        assert hashlib.sha256((export.folder / name).read_bytes()).hexdigest() == digest
    assert read_vendor_export(export.folder).frame_ids == ("seq01:000004", "seq01:000005")
    (export.folder / openlabel_name("seq01:000005")).write_text("{}")
    with pytest.raises(Exception, match="does not match the manifest"):
        read_vendor_export(export.folder)


def test_the_export_is_written_once_a_rerun_returns_the_drop_as_it_was(tmp_path, records):
    first = _export(tmp_path, records)
    again = _export(tmp_path, records, base="s3://other", pre=False)

    assert first.created and not again.created and again.sha256 == first.sha256


def test_the_project_manifest_is_versioned_and_states_ontology_label_spec_and_uri_rule(tmp_path, records):
    project = json.loads((_export(tmp_path, records).folder / "project.json").read_text())

    assert project["format"] == "ceal-vendor-project/1" and project["round"] == 2 and project["tasks"] == 2
    assert [c["name"] for c in project["ontology"]["classes"]] == list(DETECTION_CLASSES)
    assert "van" in project["ontology"]["classes"][0]["includes"]
    assert project["label_specification"]["version"] == project["ontology"]["version"]
    assert "qx, qy, qz, qw" in project["label_specification"]["openlabel_cuboid"]
    assert project["sensor_uris"]["base_uri"] == "s3://bucket/prefix"


def test_a_task_carries_uris_calibration_with_lens_model_time_pose_sequence_and_pre_labels(tmp_path, records):
    lines = (_export(tmp_path, records).folder / "tasks.jsonl").read_text().splitlines()
    task, bare = (json.loads(line) for line in lines)

    assert task["external_id"] == "seq01:000004" and task["sequence_id"] == "seq01"
    assert task["timestamp_s"] == 1532402927.647951 and bare["timestamp_s"] is None  # never NaN in a file
    assert task["lidar"] == {"uri": "s3://bucket/prefix/lidar/000004.laz", "format": "laz", "num_features": 4}
    front, fisheye = task["cameras"]
    assert front["uri"] == "s3://bucket/prefix/cam/front+0800.jpg" and front["lens_model"] == "opencv_pinhole"
    assert front["cam2img"] == K.tolist() and front["lidar2cam"] == LIDAR2CAM.tolist()
    assert fisheye["lens_model"] == "mei" and fisheye["distortion"][0] == 1.2
    assert task["ego_pose"] == POSE.tolist() and bare["ego_pose"] is None
    [pre] = task["pre_labels"]
    assert pre["class"] == "car" and pre["score"] == 0.8
    assert pre["bbox_3d"] == pytest.approx([10.0, 5.0, -1.05, 4.0, 2.0, 1.5, np.pi / 2])  # gravity centre
    assert bare["pre_labels"] is None


def test_an_openlabel_scene_has_streams_coordinate_systems_and_pre_label_cuboids(tmp_path, records):
    scene = json.loads((_export(tmp_path, records).folder / openlabel_name("seq01:000004")).read_text())
    doc = scene["openlabel"]

    assert doc["metadata"]["schema_version"] == "1.0.0" and doc["metadata"]["external_id"] == "seq01:000004"
    assert doc["streams"][LIDAR_CS] == {"type": "lidar", "uri": "s3://bucket/prefix/lidar/000004.laz",
                                        "description": "laz point cloud, 4 values per point"}
    pinhole = doc["streams"]["CAM_FRONT"]["stream_properties"]["intrinsics_pinhole"]
    assert pinhole["camera_matrix_3x4"] == [1000, 0, 960, 0, 0, 1000, 540, 0, 0, 0, 1, 0]
    assert pinhole["distortion_coeffs_1xN"] == [0.1, -0.05, 0.0, 0.0, 0.01] and pinhole["width_px"] == 1920
    fisheye = doc["streams"]["M_FISHEYE_L"]["stream_properties"]["intrinsics_custom"]
    assert fisheye["model"] == "mei"
    # The description names exactly the coefficients written (xi first, then the lens's).
    named = fisheye["description"].split("coefficients (")[1].rstrip(")").split(", ")
    assert len(named) == len(fisheye["distortion_coeffs_1xN"]) and named[0] == "xi"
    camera_cs = doc["coordinate_systems"]["CAM_FRONT"]
    assert camera_cs["parent"] == LIDAR_CS
    cam_to_lidar = np.asarray(camera_cs["pose_wrt_parent"]["matrix4x4"]).reshape(4, 4)
    np.testing.assert_allclose(cam_to_lidar @ LIDAR2CAM, np.eye(4), atol=1e-12)
    frame = doc["frames"]["0"]
    assert frame["frame_properties"]["external_id"] == "seq01:000004"
    assert frame["frame_properties"]["timestamp"] == 1532402927.647951
    ego = frame["frame_properties"]["transforms"]["ego_to_world"]
    assert (ego["src"], ego["dst"]) == ("ego", "world") and ego["transform_src_to_dst"]["matrix4x4"][3] == 411.3
    cuboid = frame["objects"]["0"]["object_data"]["cuboid"][0]
    assert doc["objects"]["0"]["type"] == "car" and cuboid["coordinate_system"] == LIDAR_CS
    np.testing.assert_allclose(cuboid["val"], [10, 5, -1.05, 0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4), 4, 2, 1.5],
                               atol=1e-12)
    assert cuboid["attributes"]["boolean"] == [{"name": "pre_label", "val": True}]


def test_the_mmdet3d_info_file_has_metainfo_and_one_data_list_entry_per_task(tmp_path, records):
    infos = pickle.loads((_export(tmp_path, records).folder / "mmdet3d_infos.pkl").read_bytes())

    assert infos["metainfo"]["categories"] == {name: i for i, name in enumerate(DETECTION_CLASSES)}
    assert infos["metainfo"]["box_origin"] == [0.5, 0.5, 0.5] and infos["metainfo"]["ceal_round"] == 2
    first, second = infos["data_list"]
    assert (first["token"], first["sample_idx"], second["token"]) == ("seq01:000004", 0, "seq01:000005")
    assert first["lidar_points"]["lidar_path"] == "s3://bucket/prefix/lidar/000004.laz"
    assert first["images"]["CAM_FRONT"]["img_path"] == "s3://bucket/prefix/cam/front+0800.jpg"
    assert first["images"]["CAM_FRONT"]["lidar2cam"] == LIDAR2CAM.tolist()
    assert first["ego2global"] == POSE.tolist() and "ego2global" not in second
    [instance] = first["instances"]
    assert instance["bbox_label_3d"] == 0 and instance["bbox_3d"] == pytest.approx([10, 5, -1.05, 4, 2, 1.5, np.pi / 2])
    assert second["instances"] == []


@pytest.mark.parametrize("frame_id", ["seq01:000004", "20210901-194123-00.37.12-00.37.27@Yoda:0033643", "a b/c", ".hidden"])
def test_per_frame_file_names_are_safe_and_distinct_for_ids_that_differ_only_in_unsafe_characters(frame_id):
    stem = safe_file_stem(frame_id)
    assert set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert not stem.startswith(".") and stem != frame_id  # renamed, so the hash keeps it apart from look-alikes


def test_a_frame_id_of_safe_characters_keeps_its_name_and_look_alikes_do_not_collide():
    assert safe_file_stem("seq01_000004") == "seq01_000004"
    assert len({safe_file_stem(i) for i in ("seq01:000004", "seq01@000004", "seq01_000004")}) == 3


def test_a_file_uri_is_percent_encoded_and_decodes_to_the_path_while_a_base_uri_keeps_the_characters(tmp_path):
    from urllib.parse import unquote, urlparse

    sensor = tmp_path / "00.37.27@Yoda" / "front+0800:1.jpg"
    sensor.parent.mkdir()
    sensor.touch()
    uri = SensorUriRule(str(tmp_path)).uri(sensor)
    assert "%40Yoda" in uri and "%2B0800%3A1" in uri  # RFC 8089, as docs/VENDOR.md says
    assert unquote(urlparse(uri).path) == str(sensor.resolve())
    assert SensorUriRule(str(tmp_path), "s3://b/p").uri(sensor) == "s3://b/p/00.37.27@Yoda/front+0800:1.jpg"
