"""Exports for the labeling tools teams run (CVAT 3D, Segments.ai, Kognic), read back with each
tool's own library, and their labels coming back as the same boxes. No network."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from ceal_pipeline.export import ExportedFrame, PreLabels, SensorUriRule, frame_tasks, read_vendor_export, write_vendor_export
from ceal_pipeline.export.file_names import frame_file_stem, frame_id_of_stem
from ceal_pipeline_tests.pcd_files import read_pcd
from ceal_pipeline.export.vendor_boxes import pipeline_boxes_to_vendor
from ceal_pipeline.export.vendor_formats import export_files
from ceal_pipeline.export.vendor_inbox import read_delivery
from ceal_pipeline.frames.box_conventions import wrap_angle
from ceal_pipeline.frames.records import CameraRecord, FrameRecord, LidarFormat

LIDAR2CAM = np.array([[0, -1, 0, 0.1], [0, 0, -1, 1.5], [1, 0, 0, -0.5], [0, 0, 0, 1]], dtype=np.float64)
K = np.array([[1000.0, 0, 960], [0, 1000, 540], [0, 0, 1]])
POSE = np.array([[0, -1, 0, 411.3], [1, 0, 0, 1180.9], [0, 0, 1, 0.5], [0, 0, 0, 1]], dtype=np.float64)
#: bottom-centre boxes (the pipeline's convention): two cars and a pedestrian, yaws in every quadrant
BOXES = np.array([[10.0, 5.0, -1.8, 4.2, 1.9, 1.5, 2.5], [-7.5, 3.0, -1.7, 4.0, 1.8, 1.6, -2.0],
                  [3.0, -4.0, -1.6, 0.7, 0.6, 1.8, 0.3]])
NAMES = ("car", "car", "pedestrian")
SCORES = np.array([0.9, 0.6, 0.4])
FRAME_IDS = ("20210901-194123@Yoda:0033643", "seq01:000005")


@pytest.fixture
def tasks(tmp_path):
    """Two frames with real LiDAR .bin files and camera images; the first with pre-labels."""
    root = tmp_path / "dataset"
    (root / "lidar").mkdir(parents=True)
    (root / "cam").mkdir()
    rng = np.random.default_rng(0)
    records = []
    for i, frame_id in enumerate(FRAME_IDS):
        points = np.column_stack([rng.normal(0, 20, (500, 3)), rng.uniform(0, 255, 500)]).astype(np.float32)
        lidar = root / "lidar" / f"{i:06d}.bin"
        points.tofile(lidar)
        image = root / "cam" / f"front_{i}.jpg"
        image.write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
        camera = CameraRecord("CAM_FRONT", str(image), K, LIDAR2CAM, 1920, 1080, "opencv_pinhole",
                              (0.1, -0.05, 0.001, 0.002, 0.01))
        records.append(FrameRecord(frame_id, "seq01", 1532402927.647951 + i, str(lidar), LidarFormat("bin", 4),
                                   (camera,), ego_pose=POSE if i == 0 else None))
    uris = SensorUriRule(str(root), "s3://bucket/prefix")
    return frame_tasks(records, uris, {FRAME_IDS[0]: PreLabels(BOXES, NAMES, SCORES)})


def _drop(tmp_path, tasks, formats):
    rows = [ExportedFrame(t.external_id, t.record.sequence_id, 1.0) for t in tasks]
    return write_vendor_export(tmp_path / "outbox", 3, "det-v1", rows,
                               files=export_files(3, "det-v1", tasks, SensorUriRule(
                                   str(tmp_path / "dataset"), "s3://bucket/prefix"), formats=formats))


def _yaw_gap(a, b):
    return float(np.abs(wrap_angle(np.asarray(a) - np.asarray(b))).max())


def test_frame_file_stems_are_safe_file_names_that_give_the_frame_id_back():
    stem = frame_file_stem("20210901-194123-00.37.12-00.37.27@Yoda:0033643")

    assert ":" not in stem and "@" not in stem and "/" not in stem
    assert frame_id_of_stem(stem) == "20210901-194123-00.37.12-00.37.27@Yoda:0033643"
    assert frame_file_stem("n015-2018+0800.x_y") == "n015-2018+0800.x_y"


def test_converted_point_clouds_hold_the_source_points_and_are_checksummed_in_the_manifest(tmp_path, tasks):
    export = _drop(tmp_path, tasks, ("cvat_kitti_raw", "segments", "kognic"))
    source = np.fromfile(tasks[1].record.lidar_path, dtype=np.float32).reshape(-1, 4)
    stem = frame_file_stem(FRAME_IDS[1])

    for name in (f"cvat_kitti_raw/velodyne_points/data/{stem}.pcd", f"segments/pointclouds/{stem}.pcd",
                 f"kognic/pointclouds/{stem}.pcd"):
        assert name in export.sha256
        fields = read_pcd(export.folder / name)
        np.testing.assert_array_equal(np.column_stack([fields["x"], fields["y"], fields["z"]]), source[:, :3])
    read_vendor_export(export.folder)  # every checksum verified
    (export.folder / f"kognic/pointclouds/{stem}.pcd").write_bytes(b"changed")
    with pytest.raises(Exception, match="sha256"):
        read_vendor_export(export.folder)


def test_datumaro_reads_the_cvat_task_back_with_the_same_cuboids(tmp_path, tasks):
    import datumaro as dm

    export = _drop(tmp_path, tasks, ("cvat_kitti_raw",))
    dataset = dm.Dataset.import_from(str(export.folder / "cvat_kitti_raw"), "kitti_raw")
    labels = dataset.categories()[dm.AnnotationType.label]
    items = {frame_id_of_stem(item.id): item for item in dataset}

    assert sorted(items) == sorted(FRAME_IDS)
    assert [len(items[f].media.extra_images) for f in FRAME_IDS] == [1, 1]
    assert items[FRAME_IDS[1]].annotations == []
    cuboids = items[FRAME_IDS[0]].annotations
    assert [labels[c.label].name for c in cuboids] == list(NAMES)
    centre = pipeline_boxes_to_vendor(BOXES)
    np.testing.assert_allclose([c.position for c in cuboids], centre[:, :3], atol=1e-9)
    np.testing.assert_allclose([c.scale for c in cuboids], centre[:, 3:6], atol=1e-9)  # CVAT's sx, sy, sz
    assert _yaw_gap([c.rotation[2] for c in cuboids], BOXES[:, 6]) < 1e-9
    assert all(c.rotation[:2] == [0.0, 0.0] for c in cuboids)


def test_labels_come_back_from_cvats_kitti_raw_export_written_by_datumaro(tmp_path, tasks):
    """CVAT exports 'Kitti Raw Format 1.0' through Datumaro's own kitti_raw exporter: write one
    with it (boxes as CVAT holds them: centre, rotation, scale) and ingest it."""
    import datumaro as dm
    from datumaro.components.media import PointCloud

    centre = pipeline_boxes_to_vendor(BOXES)
    items = [dm.DatasetItem(id=frame_file_stem(FRAME_IDS[0]), annotations=[
                 dm.Cuboid3d(position=list(b[:3]), rotation=[0.0, 0.0, float(b[6])], scale=list(b[3:6]),
                             label=["car", "pedestrian"].index(n), id=i + 1, attributes={"occluded": False})
                 for i, (b, n) in enumerate(zip(centre, NAMES))], media=PointCloud.from_file(path="x.pcd")),
             dm.DatasetItem(id=frame_file_stem(FRAME_IDS[1]), media=PointCloud.from_file(path="y.pcd"))]
    dataset = dm.Dataset.from_iterable(items, categories=["car", "pedestrian"], media_type=PointCloud)
    dataset.export(str(tmp_path / "cvat_export"), "kitti_raw", reindex=True)
    delivery = tmp_path / "task_7_annotations.zip"
    with zipfile.ZipFile(delivery, "w") as archive:
        for path in (tmp_path / "cvat_export").rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(tmp_path / "cvat_export").as_posix())

    labels = read_delivery(delivery, 3, "cvat_kitti_raw").labels

    boxes, names = labels[FRAME_IDS[0]]
    order = np.argsort(boxes[:, 0])[np.argsort(np.argsort(BOXES[:, 0]))]  # Datumaro writes tracks by label
    boxes, names = boxes[order], tuple(names[i] for i in order)
    assert names == NAMES and labels[FRAME_IDS[1]][0].shape == (0, 7)
    np.testing.assert_allclose(boxes[:, :6], BOXES[:, :6], atol=1e-6)
    assert _yaw_gap(boxes[:, 6], BOXES[:, 6]) < 1e-6


def test_segments_samples_validate_with_the_segments_ai_models(tmp_path, tasks):
    from segments.typing import PointcloudCuboidLabelAttributes, PointcloudSampleAttributes, TaskAttributes

    export = _drop(tmp_path, tasks, ("segments",))
    document = json.loads((export.folder / "segments/samples.json").read_text())
    TaskAttributes.model_validate(document["task_attributes"])
    samples = [PointcloudSampleAttributes.model_validate(s["attributes"]) for s in document["samples"]]
    pre = PointcloudCuboidLabelAttributes.model_validate(document["samples"][0]["pre_label"])

    assert [s["name"] for s in document["samples"]] == list(FRAME_IDS)
    assert samples[0].pcd.type == "pcd" and (export.folder / "segments" / samples[0].pcd.url).is_file()
    assert samples[0].timestamp == 1532402927647951000 and isinstance(samples[0].timestamp, int)
    assert samples[0].ego_pose.position.x == 411.3 and samples[1].ego_pose is None
    heading = samples[0].ego_pose.heading  # a quarter turn about +z
    np.testing.assert_allclose([heading.qx, heading.qy, heading.qz, heading.qw],
                               [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)], atol=1e-12)
    image = samples[0].images[0]
    assert image.url == "s3://bucket/prefix/cam/front_0.jpg" and image.camera_convention == "OpenCV"
    np.testing.assert_allclose([image.extrinsics.translation.x, image.extrinsics.translation.y,
                                image.extrinsics.translation.z], np.linalg.inv(LIDAR2CAM)[:3, 3])
    centre = pipeline_boxes_to_vendor(BOXES)
    got = [[a.position.x, a.position.y, a.position.z, a.dimensions.x, a.dimensions.y, a.dimensions.z, a.yaw]
           for a in pre.annotations]
    np.testing.assert_allclose(got, centre)
    assert [document["task_attributes"]["categories"][a.category_id - 1]["name"] for a in pre.annotations] == \
        list(NAMES)


def test_labels_come_back_from_a_segments_release(tmp_path):
    from segments.typing import PointcloudCuboidLabelAttributes

    from ceal_pipeline.export.segments import segments_release

    release = segments_release({FRAME_IDS[0]: (BOXES, NAMES), FRAME_IDS[1]: (np.zeros((0, 7)), ())})
    release["dataset"]["samples"].append({"name": "not-labeled-yet", "metadata": {},
                                          "labels": {"ground-truth": {"label_status": "LABELING", "attributes": None}}})
    for sample in release["dataset"]["samples"][:2]:
        PointcloudCuboidLabelAttributes.model_validate(sample["labels"]["ground-truth"]["attributes"])
    path = tmp_path / "release-v1.json"
    path.write_text(json.dumps(release))

    delivery = read_delivery(path, 3)

    assert delivery.format == "segments" and sorted(delivery.labels) == sorted(FRAME_IDS)
    boxes, names = delivery.labels[FRAME_IDS[0]]
    assert names == NAMES
    np.testing.assert_allclose(boxes, BOXES, atol=1e-12)


def _kognic_to_iso8855(val):
    """Kognic's documented conversion of their cuboid val to ISO 8855 (rotate by +pi/2 about z,
    swap sx and sy), with scipy's rotations as their documentation writes it."""
    from scipy.spatial.transform import Rotation

    x, y, z, qx, qy, qz, qw, sx, sy, sz = val
    rotation = Rotation.from_quat([qx, qy, qz, qw]) * Rotation.from_rotvec([0, 0, math.pi / 2])
    return [x, y, z, *rotation.as_quat(), sy, sx, sz]


def test_kognic_scenes_validate_with_kognic_openlabel_and_follow_their_yaw_convention(tmp_path, tasks):
    from kognic.openlabel.models import OpenLabelAnnotation

    from ceal_pipeline.frames.box_conventions import quaternion_xyzw_to_yaw

    export = _drop(tmp_path, tasks, ("kognic",))
    scenes = {frame_id_of_stem(p.stem): json.loads(p.read_text()) for p in (export.folder / "kognic").glob("*.json")}
    for scene in scenes.values():
        OpenLabelAnnotation.model_validate(scene)
    document = scenes[FRAME_IDS[0]]["openlabel"]

    assert sorted(scenes) == sorted(FRAME_IDS)
    assert all(set(o) == {"name", "type"} for o in document["objects"].values())  # one-frame sequence
    frame = document["frames"]["0"]
    assert frame["frame_properties"]["timestamp"] == 1532402927647951000
    cuboids = [o["object_data"]["cuboid"][0] for o in frame["objects"].values()]
    assert [c["attributes"]["text"] for c in cuboids] == [[{"name": "stream", "val": "LIDAR"}]] * 3
    iso = np.array([_kognic_to_iso8855(c["val"]) for c in cuboids])
    centre = pipeline_boxes_to_vendor(BOXES)
    np.testing.assert_allclose(iso[:, [0, 1, 2, 7, 8, 9]], centre[:, :6], atol=1e-9)
    assert _yaw_gap(quaternion_xyzw_to_yaw(iso[:, 3:7]), BOXES[:, 6]) < 1e-9
    pcd_path = export.folder / "kognic" / document["streams"]["LIDAR"]["uri"]  # relative to kognic/ until uploaded
    pcd = read_pcd(pcd_path)
    assert list(pcd) == ["x", "y", "z", "intensity", "timestamp"]
    assert pcd["intensity"].dtype == np.uint32 and pcd["timestamp"].dtype == np.uint64
    assert set(pcd["timestamp"].tolist()) == {1532402927647951000}
    header = pcd_path.read_bytes()[:400]
    assert b"FIELDS x y z intensity timestamp\nSIZE 4 4 4 4 8\nTYPE F F F U U\n" in header


def test_labels_come_back_from_a_kognic_export_in_their_convention(tmp_path):
    from kognic.openlabel.models import OpenLabelAnnotation

    from ceal_pipeline.export.kognic import kognic_delivery
    from ceal_pipeline.export.vendor_inbox import inbox_name

    document = kognic_delivery({FRAME_IDS[0]: (BOXES, NAMES), FRAME_IDS[1]: (np.zeros((0, 7)), ())}, "kognic")
    OpenLabelAnnotation.model_validate(document)
    path = tmp_path / inbox_name("scene-42.json", "kognic")
    path.write_text(json.dumps(document))

    delivery = read_delivery(path, 3, "kognic")

    assert path.name == "scene-42.kognic.json" and delivery.format == "kognic"
    boxes, names = delivery.labels[FRAME_IDS[0]]
    assert names == NAMES and delivery.labels[FRAME_IDS[1]][0].shape == (0, 7)
    np.testing.assert_allclose(boxes[:, :6], BOXES[:, :6], atol=1e-9)
    assert _yaw_gap(boxes[:, 6], BOXES[:, 6]) < 1e-9


def test_the_project_manifest_names_each_chosen_tool_and_how_its_labels_come_back(tmp_path, tasks):
    export = _drop(tmp_path, tasks, ("openlabel", "segments"))
    project = json.loads((export.folder / "project.json").read_text())

    assert project["export_formats"] == ["openlabel", "segments"]
    assert set(project["delivery"]["formats"]) == {"openlabel", "mmdet3d", "segments"}
    assert "mmdet3d_infos.pkl" not in export.sha256 and not (export.folder / "kognic").exists()
    with pytest.raises(ValueError, match="unknown export formats"):
        export_files(3, "v", tasks, SensorUriRule(str(tmp_path / "dataset"), ""), formats=("labelbox",))


def test_ceal_yaml_export_formats_takes_the_tool_formats_and_refuses_others(tmp_path):
    from ceal_pipeline.configuration import ProjectConfigError, load_project_config

    good = tmp_path / "ceal.yaml"
    good.write_text("preset: cpu-small\nexport:\n  formats: [openlabel, cvat_kitti_raw, segments, kognic]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: cpu-small\nexport:\n  formats: [openlabel, cvat]\n")

    assert load_project_config(good, {}).export.formats == ["openlabel", "cvat_kitti_raw", "segments", "kognic"]
    assert load_project_config(None, {}, use_file=False).export.formats == ["openlabel", "mmdet3d"]
    with pytest.raises(ProjectConfigError, match="formats"):
        load_project_config(bad, {})


@pytest.mark.parametrize("fmt", ["cvat_kitti_raw", "segments", "kognic"])
def test_ceal_labels_ingest_takes_each_tools_labels_back_as_boxes(tmp_path, tasks, fmt, capsys):
    from ceal_pipeline.cli import main
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.export.vendor_inbox import delivery_bytes

    history = AcquisitionHistory(tmp_path / "history.duckdb")
    records = [t.record for t in tasks]
    history.register_frame_arrays(list(FRAME_IDS), [r.sequence_id for r in records])
    history.start_round(0, seed=0, parameters={})
    history.save_selection(0, list(FRAME_IDS), np.zeros(2))
    history.record_export(0, tmp_path / "outbox" / "round-0000", list(FRAME_IDS))
    labels = {FRAME_IDS[0]: (BOXES, NAMES), FRAME_IDS[1]: (np.zeros((0, 7)), ())}
    upload = tmp_path / {"cvat_kitti_raw": "task_3.zip", "segments": "release.json", "kognic": "scene.json"}[fmt]
    upload.write_bytes(delivery_bytes(labels, fmt, "team"))
    command = ["labels", "ingest", "--format", fmt, str(upload), "--round", "0",
               "--history", str(tmp_path / "history.duckdb"), "--inbox", str(tmp_path / "inbox")]

    assert main(command) == 0
    line = json.loads(capsys.readouterr().out)
    assert (line["frames_added"], line["boxes_added"], line["rejected"]) == (2, 3, {})
    delivered = history.delivered_labels(list(FRAME_IDS))
    np.testing.assert_allclose(delivered[FRAME_IDS[0]][0].values, BOXES, atol=1e-9)
    assert tuple(delivered[FRAME_IDS[0]][1]) == NAMES and len(delivered[FRAME_IDS[1]][0]) == 0
    inbox_files = [p.name for p in (tmp_path / "inbox" / "round-0000").iterdir()]
    assert inbox_files == [{"kognic": "scene.kognic.json"}.get(fmt, upload.name)]


def _cvat_zip_without_frame_list(tmp_path):
    path = tmp_path / "task.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tracklet_labels.xml", "<boost_serialization><tracklets/></boost_serialization>")
    return path


def _cvat_zip_with_an_entity_bomb(tmp_path):
    path = tmp_path / "task.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("frame_list.txt", f"0 {frame_file_stem(FRAME_IDS[0])}\n")
        archive.writestr("tracklet_labels.xml", '<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaa">]>'
                                                "<boost_serialization><tracklets>&a;</tracklets></boost_serialization>")
    return path


def _segments_release_with_an_unknown_category(tmp_path):
    from ceal_pipeline.export.segments import segments_release

    release = segments_release({FRAME_IDS[0]: (BOXES, NAMES)})
    release["dataset"]["samples"][0]["labels"]["ground-truth"]["attributes"]["annotations"][0]["category_id"] = 9
    path = tmp_path / "release.json"
    path.write_text(json.dumps(release))
    return path


def _kognic_scene_in_another_coordinate_system(tmp_path):
    from ceal_pipeline.export.kognic import kognic_delivery

    document = kognic_delivery({FRAME_IDS[0]: (BOXES, NAMES)}, "kognic")
    for obj in document["openlabel"]["frames"]["0"]["objects"].values():
        obj["object_data"]["cuboid"][0]["coordinate_system"] = "world"
    path = tmp_path / "scene.kognic.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("make, reason", [
    (_cvat_zip_without_frame_list, r"frame_list.txt'\] missing .*Kitti Raw Format 1.0"),
    (_cvat_zip_with_an_entity_bomb, r"tracklet_labels.xml is not readable XML .*Entities"),
    (_segments_release_with_an_unknown_category, r"category_id 9 is not in dataset.task_attributes.categories"),
    (_kognic_scene_in_another_coordinate_system, r"cuboid in coordinate system 'world'"),
])
def test_a_bad_tool_delivery_is_refused_with_its_file_and_reason(tmp_path, make, reason):
    from ceal_pipeline.export.openlabel import MalformedDelivery

    path = make(tmp_path)
    with pytest.raises(MalformedDelivery, match=reason) as refused:
        read_delivery(path, 3)
    assert str(path) in str(refused.value)
