"""Specification of the incremental ingest: what is parsed, what is reported, what a commit is."""

from __future__ import annotations

import json
import os

import pytest

from ceal_pipeline.catalog import CatalogBusy, FrameCatalog
from ceal_pipeline.catalog import ingest as ingest_module
from ceal_pipeline.catalog import units as units_module
from ceal_pipeline.catalog.manifest import CatalogFormatError
from ceal_pipeline.catalog.parts import ROW_GROUP_ROWS, Batches, read_table


def _parsed_paths(monkeypatch) -> list[str]:
    """Record which units the ingest parses."""
    parsed: list[str] = []
    original = units_module.parse_unit

    def spy(task):
        parsed.append(os.path.basename(task.path))
        return original(task)

    monkeypatch.setattr(ingest_module, "parse_unit", spy)
    return parsed


def test_second_ingest_parses_only_new_or_changed_info_files(tmp_path, infos, monkeypatch):
    infos.write("a.pkl", 0, 8)
    infos.write("b.pkl", 8, 16)
    catalog = FrameCatalog(tmp_path / "catalog")
    parsed = _parsed_paths(monkeypatch)
    first = catalog.ingest("mmdet3d", infos.root)
    assert sorted(parsed) == ["a.pkl", "b.pkl"] and first.frames_added == 16 and catalog.frame_count() == 16

    parsed.clear()
    infos.write("c.pkl", 16, 20)
    second = catalog.ingest("mmdet3d", infos.root)
    assert parsed == ["c.pkl"]
    assert (second.units_parsed, second.units_skipped, second.frames_added) == (1, 2, 4)
    assert catalog.frame_count() == 20

    parsed.clear()
    infos.rewrite("a.pkl", lambda info: info["data_list"][0]["instances"].pop())
    third = catalog.ingest("mmdet3d", infos.root)
    assert parsed == ["a.pkl"] and third.frames_changed == 1 and third.examples["changed"] == infos.ids(0, 1)

    parsed.clear()
    nothing = catalog.ingest("mmdet3d", infos.root)
    assert parsed == [] and nothing.units_skipped == 3 and nothing.generation == third.generation


def test_a_frame_missing_from_a_changed_info_file_is_reported_not_dropped(tmp_path, infos):
    infos.write("a.pkl", 0, 6)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    gone = infos.ids(2, 3)[0]
    infos.rewrite("a.pkl", lambda info: info["data_list"].pop(2))

    report = catalog.ingest("mmdet3d", infos.root)
    assert report.frames_removed == 1 and report.examples["removed"] == [gone]
    assert any("left the catalog" in w for w in report.warnings)
    # removed frames leave the live catalog but stay listed, with their last fingerprint
    assert gone not in set(catalog.frame_ids()) and catalog.frame_count() == 5
    log = catalog.changes().to_pylist()
    (row,) = [r for r in log if r["change"] == "removed"]
    assert row["frame_id"] == gone and row["old_fingerprint"] is not None and row["source_file"].endswith("a.pkl")
    with pytest.raises(KeyError, match="changes"):
        catalog.records([gone])


def test_an_info_file_that_disappears_takes_its_frames_out_and_lists_them(tmp_path, infos):
    infos.write("a.pkl", 0, 4)
    infos.write("b.pkl", 4, 7)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    (infos.root / "b.pkl").unlink()
    report = catalog.ingest("mmdet3d", infos.root)
    assert (report.units_removed, report.frames_removed, report.frames) == (1, 3, 4)
    assert sorted(catalog.frame_ids()) == sorted(infos.ids(0, 4))


def test_ingesting_named_info_files_leaves_the_other_files_of_the_root_alone(tmp_path, infos):
    infos.write("a.pkl", 0, 4)
    infos.write("b.pkl", 4, 7)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    report = catalog.ingest("mmdet3d", infos.root, info=["a.pkl"])
    assert report.units_removed == 0 and catalog.frame_count() == 7


def test_duplicate_frame_ids_across_files_are_quarantined_loudly_and_the_first_copy_kept(tmp_path, infos):
    infos.write("a.pkl", 0, 5)
    infos.write("b.pkl", 3, 8)  # frames 3 and 4 again
    catalog = FrameCatalog(tmp_path / "catalog")
    report = catalog.ingest("mmdet3d", infos.root)
    assert report.duplicates == 2 and sorted(report.examples["duplicate"]) == sorted(infos.ids(3, 5))
    assert any("occur twice" in w for w in report.warnings)
    assert catalog.frame_count() == 8 and len(set(catalog.frame_ids())) == 8
    quarantined = {q.frame_id: q for q in catalog.quarantined()}
    assert set(quarantined) == set(infos.ids(3, 5))
    assert "b.pkl" in quarantined[infos.ids(3, 4)[0]].reason and "a.pkl" in quarantined[infos.ids(3, 4)[0]].reason
    table = catalog.table(["frame_id", "source_file"], infos.ids(3, 5))
    assert all(f.endswith("a.pkl") for f in table.column("source_file").to_pylist())

    # a later file repeating a live id loses against the live copy
    infos.write("c.pkl", 7, 9)
    later = catalog.ingest("mmdet3d", infos.root)
    assert later.duplicates == 1 and later.frames_added == 1 and catalog.frame_count() == 9


def test_changed_reader_options_reparse_the_unit(tmp_path, infos):
    infos.write("a.pkl", 0, 3)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    report = catalog.ingest("mmdet3d", infos.root, frame_id_prefix="fleet-")
    assert report.units_parsed == 1 and report.frames_added == 3 and report.frames_removed == 3
    assert all(f.startswith("fleet-") for f in catalog.frame_ids())


def test_an_ingest_killed_before_its_commit_leaves_the_previous_catalog(tmp_path, infos, monkeypatch):
    infos.write("a.pkl", 0, 4)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    before = sorted(catalog.frame_ids())
    infos.write("b.pkl", 4, 8)

    def killed(root, manifest):
        raise KeyboardInterrupt("killed before the commit")

    monkeypatch.setattr(ingest_module, "write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        catalog.ingest("mmdet3d", infos.root)
    monkeypatch.undo()
    orphans = len(list((tmp_path / "catalog" / "frames").glob("*.arrow")))
    assert orphans == 2  # the new unit's part exists but is not live
    assert sorted(FrameCatalog(tmp_path / "catalog").frame_ids()) == before
    report = catalog.ingest("mmdet3d", infos.root)
    assert report.frames_added == 4 and catalog.frame_count() == 8
    assert len(list((tmp_path / "catalog" / "frames").glob("*.arrow"))) == 2  # orphan collected


def test_a_second_writer_is_refused_while_one_ingests(tmp_path, infos):
    import fcntl

    infos.write("a.pkl", 0, 2)
    root = tmp_path / "catalog"
    root.mkdir()
    with open(root / ingest_module.LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(CatalogBusy, match="one writer at a time"):
            FrameCatalog(root).ingest("mmdet3d", infos.root)


def test_every_part_is_sorted_by_frame_id_in_small_record_batches(tmp_path, infos):
    infos.write("a.pkl", 0, 600)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root, check="exists")
    (part,) = (tmp_path / "catalog" / "frames").glob("*.arrow")
    ids = read_table(part, columns=["frame_id"]).column(0).to_pylist()
    assert ids == sorted(ids) and Batches(part, "frames").num_batches == -(-600 // ROW_GROUP_ROWS["frames"])


def test_a_catalog_of_the_previous_format_is_rebuilt_by_the_next_ingest_and_refused_by_readers(tmp_path, infos):
    infos.write("a.pkl", 0, 5)
    root = tmp_path / "catalog"
    FrameCatalog(root).ingest("mmdet3d", infos.root, check="exists")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = 1  # as a catalog written with Parquet parts left it
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "frames" / "g000001-old-000.parquet").write_bytes(b"PAR1 a version-1 part")
    with pytest.raises(CatalogFormatError, match="older ceal-pipeline.*ingest again"):
        FrameCatalog(root).frame_ids()
    report = FrameCatalog(root).ingest("mmdet3d", infos.root, check="exists")
    assert report.units_parsed == 1 and any("format version 1" in w for w in report.warnings)
    assert sorted(FrameCatalog(root).frame_ids()) == sorted(infos.ids(0, 5))
    assert not list((root / "frames").glob("*.parquet"))  # the old part is collected


def test_unreadable_frames_are_quarantined_with_reason_and_file(tmp_path, infos):
    infos.write("a.pkl", 0, 3)

    def break_one(info):
        info["data_list"][1]["lidar_points"]["lidar_path"] = "samples/LIDAR_TOP/missing.bin"

    infos.rewrite("a.pkl", break_one)
    catalog = FrameCatalog(tmp_path / "catalog")
    report = catalog.ingest("mmdet3d", infos.root)
    assert report.quarantined == 1 and catalog.frame_count() == 2
    (bad,) = catalog.quarantined()
    assert bad.frame_id == infos.ids(1, 2)[0] and "missing.bin is missing" in bad.reason
    assert bad.path.endswith("missing.bin")


def test_synthetic_ingest_generates_the_dataset_when_missing_then_catalogs_it(tmp_path):
    catalog = FrameCatalog(tmp_path / "catalog")
    source = tmp_path / "synthetic"
    report = catalog.ingest("synthetic", source, n_frames=4, seed=3, frames_per_sequence=2)
    assert (source / "ceal_synthetic_infos.pkl").is_file() and report.frames == 4
    assert catalog.frame_ids().tolist() == [f"syn3-{s:05d}-{k:03d}" for s in range(2) for k in range(2)]
    again = catalog.ingest("synthetic", source)  # an existing dataset is read as it is
    assert again.units_skipped == 1 and again.units_parsed == 0


def test_aimotive_ingest_keeps_sequence_folders_as_units(tmp_path, aimotive_sequence, monkeypatch):
    catalog = FrameCatalog(tmp_path / "catalog")
    first = catalog.ingest("aimotive", aimotive_sequence, check="exists")
    assert first.units_seen == 1 and first.frames == 44 and first.boxes > 0
    parsed = _parsed_paths(monkeypatch)
    again = catalog.ingest("aimotive", aimotive_sequence, check="exists")
    assert parsed == [] and again.units_skipped == 1
