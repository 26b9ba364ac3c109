"""Specification of the synthetic driving-scene generator and its mmdet3d-info output."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.frames import synthetic
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline.frames.synthetic.config import SyntheticConfig
from ceal_pipeline.frames.synthetic.scenes import draw_sequence, is_val_sequence

from .conftest import SMALL_SYNTHETIC


def _digests(root: Path) -> dict[str, str]:
    """Digest of every data file (not the generation lock, nor the ownership marker every folder it made has)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (synthetic.writer.LOCK_FILE, synthetic.writer.OWNER_MARKER)}


def test_same_seed_gives_byte_identical_datasets(small_synthetic, tmp_path):
    again = tmp_path / "again"
    synthetic.generate_dataset(again, **SMALL_SYNTHETIC)
    assert _digests(again) == _digests(small_synthetic)


def test_another_seed_gives_another_dataset(small_synthetic, tmp_path):
    other = tmp_path / "other"
    synthetic.generate_dataset(other, **dict(SMALL_SYNTHETIC, seed=SMALL_SYNTHETIC["seed"] + 1))
    assert not set(_digests(small_synthetic).values()) & set(_digests(other).values())


def test_writes_the_mmdet3d_info_layout_with_relative_paths(small_synthetic):
    info = pickle.loads((small_synthetic / synthetic.INFO_FILE).read_bytes())
    assert set(info) == {"metainfo", "data_list"}
    assert info["metainfo"]["dataset"] == "ceal-synthetic"
    assert info["metainfo"]["categories"] == {name: i for i, name in enumerate(DETECTION_CLASSES)}
    entry = info["data_list"][0]
    assert entry["lidar_points"]["num_pts_feats"] == 4 and not Path(entry["lidar_points"]["lidar_path"]).is_absolute()
    assert set(entry["images"]) == {"CAM_FRONT", "CAM_BACK"}
    raw = np.fromfile(small_synthetic / entry["lidar_points"]["lidar_path"], dtype=np.float32)
    assert raw.size % 4 == 0 and 5_000 <= raw.size // 4 <= 25_000


def test_reads_back_through_the_mmdet3d_reader_with_sequences_and_a_val_split(small_synthetic):
    result = synthetic.read_frames(small_synthetic)
    assert len(result.frames) == 18 and result.quarantined == []
    assert len({f.sequence_id for f in result.frames}) == 3
    assert all(f.is_labeled and len(f.cameras) == 2 for f in result.frames)
    splits = [is_val_sequence(i, 0.2) for i in range(3)]
    assert {f.split for f in result.frames} == ({"train", "val"} if any(splits) else {"train"})
    camera = result.frames[0].cameras[0]
    assert (camera.width, camera.height) == (256, 128)


def test_every_labeled_box_contains_lidar_points_and_their_number_is_recorded(small_synthetic):
    info = pickle.loads((small_synthetic / synthetic.INFO_FILE).read_bytes())
    result = synthetic.read_frames(small_synthetic)
    assert len(result.frames) == len(info["data_list"]) > 0  # zip must not stop early or never start
    for frame, entry in zip(result.frames, info["data_list"]):
        counts = count_points_in_boxes(load_points(frame), frame.boxes)
        assert (counts >= 1).all(), frame.frame_id
        assert counts.tolist() == [inst["num_lidar_pts"] for inst in entry["instances"]]


def test_consecutive_frames_of_a_sequence_are_near_identical(small_synthetic):
    info = pickle.loads((small_synthetic / synthetic.INFO_FILE).read_bytes())["data_list"]
    pairs = [(b, a) for b, a in zip(info, info[1:]) if b["scene_token"] == a["scene_token"]]
    assert len(pairs) >= len(info) // 2  # most neighbours share a sequence: the loop below checks them
    for before, after in pairs:
        assert after["timestamp"] - before["timestamp"] == pytest.approx(0.1)
        tracks = {i["track_id"]: np.array(i["bbox_3d"][:2]) for i in before["instances"]}
        moved = [np.linalg.norm(np.array(i["bbox_3d"][:2]) - tracks[i["track_id"]])
                 for i in after["instances"] if i["track_id"] in tracks]
        assert moved and max(moved) < 3.0  # <= 30 m/s relative speed over 0.1 s


def test_all_classes_and_hard_conditions_occur_over_many_sequences():
    config = SyntheticConfig(n_frames=2000)
    scenes = [draw_sequence(config, i) for i in range(100)]
    labels = np.concatenate([s.actor_labels for s in scenes])
    assert np.bincount(labels, minlength=4).min() > 50
    for condition in ("night", "rain", "far", "rare"):
        assert 2 <= sum(condition in s.conditions for s in scenes) <= 30, condition


def test_frame_conditions_give_every_frame_its_sequences_hard_conditions(small_synthetic):
    conditions = synthetic.frame_conditions(small_synthetic)
    frames = synthetic.read_frames(small_synthetic).frames
    assert frames and set(conditions) == {f.frame_id for f in frames}
    config = SyntheticConfig(**SMALL_SYNTHETIC)
    for frame in frames:
        sequence = int(frame.sequence_id.rsplit("-", 1)[1])
        assert conditions[frame.frame_id] == tuple(draw_sequence(config, sequence).conditions)
        assert set(conditions[frame.frame_id]) <= set(synthetic.CONDITIONS)
    with pytest.raises(FileNotFoundError, match="generate the synthetic dataset"):
        synthetic.frame_conditions(small_synthetic / "missing")


def test_sequences_do_not_depend_on_the_dataset_size():
    small, large = SyntheticConfig(n_frames=40), SyntheticConfig(n_frames=2000)
    a, b = draw_sequence(small, 1), draw_sequence(large, 1)
    np.testing.assert_array_equal(a.actor_boxes, b.actor_boxes)
    assert a.split == b.split


def test_completed_dataset_with_same_parameters_is_reused_untouched(small_synthetic):
    info = small_synthetic / synthetic.INFO_FILE
    before = info.stat().st_mtime_ns
    assert synthetic.generate_dataset(small_synthetic, **SMALL_SYNTHETIC) == info
    assert info.stat().st_mtime_ns == before


def test_other_parameters_on_an_existing_dataset_need_overwrite(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=4, seed=1, frames_per_sequence=2)
    with pytest.raises(synthetic.SyntheticDatasetMismatch, match="overwrite"):
        synthetic.generate_dataset(root, n_frames=6, seed=1, frames_per_sequence=2)
    synthetic.generate_dataset(root, n_frames=2, seed=1, frames_per_sequence=2, overwrite=True)
    assert len(list((root / "lidar").glob("*.bin"))) == 2  # stale frames are gone
    assert json.loads((root / "manifest.json").read_text())["params"]["n_frames"] == 2


def test_interrupted_generation_without_manifest_is_redone(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=2, seed=3, frames_per_sequence=2)
    (root / "manifest.json").unlink()
    (root / "lidar" / "syn3-00000-000.bin").unlink()
    synthetic.generate_dataset(root, n_frames=2, seed=3, frames_per_sequence=2)
    assert (root / "lidar" / "syn3-00000-000.bin").is_file()


def test_deleted_lidar_file_quarantines_that_frame_only(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=4, seed=2, frames_per_sequence=2)
    (root / "lidar" / "syn2-00001-000.bin").unlink()
    result = synthetic.read_frames(root)
    assert len(result.frames) == 3
    (bad,) = result.quarantined
    assert bad.frame_id == "syn2-00001-000" and "is missing" in bad.reason


def test_unknown_generator_option_is_named():
    with pytest.raises(TypeError, match="lidar_beam"):
        SyntheticConfig.from_options(lidar_beam=16)


@pytest.mark.mmdet3d
def test_mmdet3d_itself_loads_the_synthetic_info_file(small_synthetic):
    datasets = pytest.importorskip("mmdet3d.datasets")
    transforms = pytest.importorskip("mmdet3d.datasets.transforms")

    class SyntheticDataset(datasets.Det3DDataset):
        METAINFO = {"classes": DETECTION_CLASSES}

    dataset = SyntheticDataset(data_root=str(small_synthetic), ann_file=synthetic.INFO_FILE, pipeline=[],
                               data_prefix=dict(pts="", CAM_FRONT="", CAM_BACK="", img=""),
                               modality=dict(use_lidar=True, use_camera=True))
    ours = synthetic.read_frames(small_synthetic).frames
    assert len(dataset) == len(ours)
    info = dataset.get_data_info(0)
    np.testing.assert_allclose(info["ann_info"]["gt_bboxes_3d"], ours[0].boxes, atol=1e-5)
    loaded = transforms.LoadPointsFromFile(coord_type="LIDAR", load_dim=4, use_dim=4)(
        dict(lidar_points=info["lidar_points"]))
    np.testing.assert_array_equal(loaded["points"].tensor.numpy(), load_points(ours[0]))


def test_reading_without_parameters_regenerates_a_removed_info_file_with_the_recorded_ones(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=3, seed=4, frames_per_sequence=3)
    (root / synthetic.INFO_FILE).unlink()
    result = synthetic.read_frames(root)
    assert [f.frame_id for f in result.frames] == ["syn4-00000-000", "syn4-00000-001", "syn4-00000-002"]


def test_documented_parameter_table_matches_the_generator_defaults():
    import dataclasses
    import re

    readme = (Path(synthetic.__file__).parents[1] / "README.md").read_text()
    table = readme.split("| parameter | default | meaning |", 1)[1]
    documented = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", table, flags=re.MULTILINE))
    defaults = {f.name: str(f.default) for f in dataclasses.fields(SyntheticConfig)}
    assert documented == defaults


def test_dataset_of_another_generator_version_is_regenerated_not_refused(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=2, seed=6, frames_per_sequence=2)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = "0"
    manifest["params"]["retired_option"] = 1
    manifest_path.write_text(json.dumps(manifest))
    result = synthetic.read_frames(root)
    assert len(result.frames) == 2
    assert json.loads(manifest_path.read_text())["version"] == synthetic.GENERATOR_VERSION


def _hold_lock(root, exclusive: bool):
    """A child process holding ``root``'s generation lock (as a reader, or a generator) until killed."""
    import subprocess
    import sys

    code = ("import sys, time; from ceal_pipeline.frames.synthetic import dataset_lock\n"
            f"with dataset_lock(sys.argv[1], exclusive={exclusive}):\n"
            "    print('held', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_dataset_being_read_by_another_process_is_not_regenerated_or_deleted_under_it(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=4, seed=1, frames_per_sequence=2)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    reader = _hold_lock(root, exclusive=False)
    try:
        with pytest.raises(synthetic.SyntheticDatasetBusy, match="another process is reading .* wait for it"):
            synthetic.generate_dataset(root, n_frames=2, seed=5, frames_per_sequence=2, overwrite=True)
    finally:
        reader.kill()
        reader.wait()
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    synthetic.generate_dataset(root, n_frames=2, seed=5, frames_per_sequence=2, overwrite=True)
    assert sorted(p.name for p in (root / "lidar").iterdir()) == ["syn5-00000-000.bin", "syn5-00000-001.bin"]


def test_a_dataset_being_generated_by_another_process_is_not_read_half_written(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate_dataset(root, n_frames=2, seed=1, frames_per_sequence=2)
    generator = _hold_lock(root, exclusive=True)
    try:
        with pytest.raises(synthetic.SyntheticDatasetBusy, match="another process is generating"):
            synthetic.read_frames(root)
    finally:
        generator.kill()
        generator.wait()
    assert len(synthetic.read_frames(root).frames) == 2


def test_a_folder_the_generator_did_not_create_is_refused_and_left_untouched(tmp_path):
    dataset = tmp_path / "aimotive"
    (dataset / "data" / "train").mkdir(parents=True)
    (dataset / "LICENSE.txt").write_text("CC BY-NC-SA 4.0\n")
    before = _digests(dataset)
    with pytest.raises(synthetic.ForeignDataFolder) as refused:
        synthetic.generate_dataset(dataset, n_frames=2, seed=1, frames_per_sequence=2)
    message = str(refused.value)
    assert str(dataset) in message and "LICENSE.txt, data" in message
    assert "never writes into a folder it did not create" in message
    assert f"ceal init --source aimotive --root {dataset}" in message and "a new or empty folder" in message
    assert _digests(dataset) == before and sorted(p.name for p in dataset.iterdir()) == ["LICENSE.txt", "data"]


def test_a_new_or_empty_folder_becomes_the_generators_own_and_is_reused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    synthetic.generate_dataset(empty, n_frames=2, seed=1, frames_per_sequence=2)
    synthetic.generate_dataset(tmp_path / "new" / "nested", n_frames=2, seed=1, frames_per_sequence=2)
    for root in (empty, tmp_path / "new" / "nested"):
        assert (root / ".ceal-synthetic").is_file()
        # its own folder: a regeneration with other parameters may replace its files
        synthetic.generate_dataset(root, n_frames=4, seed=1, frames_per_sequence=2, overwrite=True)
        assert len(list((root / "lidar").glob("*.bin"))) == 4
