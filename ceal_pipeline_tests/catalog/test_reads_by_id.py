"""Specification of reads by frame id: same records as the source reader, only the rows asked for."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.catalog import FrameCatalog
from ceal_pipeline.catalog.fingerprint import frame_fingerprints
from ceal_pipeline.catalog.parts import ROW_GROUP_ROWS, Batches
from ceal_pipeline.catalog.schema import batch_from_tables, boxes_table, frames_table
from ceal_pipeline.frames.batch import batch_from_records
from ceal_pipeline.frames.sources import read_source
from ceal_pipeline_tests.catalog.info_folder import InfoFolder
from ceal_pipeline_tests.catalog.same_records import assert_same_records


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    """A catalog of two info files (train, val; 5 val frames unannotated); tests only read it."""
    tmp_path = tmp_path_factory.mktemp("two_files")
    infos = InfoFolder(tmp_path / "source")
    infos.write("a_train.pkl", 0, 40)
    infos.write("b_val.pkl", 40, 60)

    def unlabel(info):
        for entry in info["data_list"][:5]:
            del entry["instances"]

    infos.rewrite("b_val.pkl", unlabel)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    return catalog, infos


def test_records_by_id_round_trip_every_field_of_the_source_reader(two_files):
    catalog, infos = two_files
    expected = read_source("mmdet3d", infos.root).frames
    order = np.random.default_rng(0).permutation(len(expected))
    wanted = [expected[i] for i in order]
    assert_same_records(wanted, catalog.records([r.frame_id for r in wanted]))


def test_real_aimotive_sequence_and_nuscenes_sample_round_trip(tmp_path, aimotive_sequence, nuscenes_sample):
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("aimotive", aimotive_sequence)
    catalog.ingest("mmdet3d", nuscenes_sample)
    expected = read_source("aimotive", aimotive_sequence).frames + read_source("mmdet3d", nuscenes_sample).frames
    assert catalog.frame_count() == 45 == len(expected)
    assert_same_records(expected[::-1], catalog.records([r.frame_id for r in expected[::-1]]))
    (nuscenes,) = catalog.records(["ca9a282c9e77460f8360f564131a8af5"])
    assert nuscenes.ego_pose.shape == (4, 4) and len(nuscenes.boxes) == 43 and len(nuscenes.cameras) == 6


@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.integers(0, 59), min_size=1, max_size=30))
def test_records_come_back_in_the_requested_order_with_their_own_boxes(two_files, picks):
    catalog, infos = two_files
    ids = infos.ids(0, 60)
    wanted = [ids[i] for i in picks]  # any order, repeats allowed
    records = catalog.records(wanted)
    assert [r.frame_id for r in records] == wanted
    boxes = catalog.table(["frame_id", "box_count", "labeled"], wanted).to_pylist()
    for record, row in zip(records, boxes):
        assert record.frame_id == row["frame_id"]
        assert record.is_labeled == row["labeled"]
        assert (len(record.boxes) if record.is_labeled else 0) == row["box_count"]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), drop_box=st.booleans())
def test_fingerprints_survive_the_tables_and_change_with_any_box(infos_for_property, seed, drop_box):
    records = infos_for_property
    batch = batch_from_records(records)
    fingerprints = frame_fingerprints(batch)
    back = batch_from_tables(frames_table(batch, fingerprints, source_kind="mmdet3d", source_file="x"),
                             boxes_table(batch))
    assert list(frame_fingerprints(back)) == list(fingerprints)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(len(batch.boxes)))
    if drop_box:
        changed = batch.take(np.arange(len(batch)))
        changed.boxes = changed.boxes.copy()
        changed.boxes[k, int(rng.integers(7))] += np.float32(0.01)
    else:
        changed = batch.take(np.arange(len(batch)))
        changed.labels = changed.labels.copy()
        changed.labels[k] = (changed.labels[k] + 1) % 4
    owner = int(np.searchsorted(batch.box_offsets, k, side="right") - 1)
    differs = frame_fingerprints(changed) != fingerprints
    assert differs.tolist() == [i == owner for i in range(len(batch))]


@pytest.fixture(scope="module")
def infos_for_property(tmp_path_factory):
    folder = InfoFolder(tmp_path_factory.mktemp("property"))
    folder.write("a.pkl", 0, 12)
    return read_source("mmdet3d", folder.root).frames


def test_unknown_ids_raise_a_key_error_naming_them_and_the_fix(two_files):
    catalog, infos = two_files
    with pytest.raises(KeyError, match=r"2 frame ids \(nope-1, nope-2\).*re-ingest the source"):
        catalog.records([infos.ids(0, 1)[0], "nope-1", "nope-2"])
    with pytest.raises(KeyError, match="nope"):
        catalog.sequence_ids(["nope"])


def test_frame_ids_filter_by_split_and_annotation(two_files):
    catalog, infos = two_files
    ids = infos.ids(0, 60)
    assert catalog.frame_ids().tolist() == sorted(ids)
    assert catalog.frame_ids(split="val").tolist() == sorted(ids[40:])
    assert catalog.frame_ids(annotated=False).tolist() == sorted(ids[40:45])
    assert catalog.frame_ids(split="train", annotated=False).tolist() == []
    assert len(catalog.frame_ids(annotated=True)) == 55


def test_sequence_ids_and_table_columns_follow_the_requested_ids(two_files):
    catalog, infos = two_files
    ids = infos.ids(0, 60)
    wanted = [ids[59], ids[0], ids[41]]
    assert catalog.sequence_ids(wanted).tolist() == ["scene-0000001", "scene-0000000", "scene-0000001"]
    table = catalog.table(["frame_id", "split"], wanted)
    assert table.column_names == ["frame_id", "split"] and table.column("split").to_pylist() == ["val", "train", "val"]
    assert catalog.table(["frame_id"]).num_rows == 60
    with pytest.raises(ValueError, match="unknown catalog column"):
        catalog.table(["nope"])


def test_a_lookup_decodes_only_the_record_batches_and_columns_it_needs(tmp_path, infos, monkeypatch):
    infos.write("a.pkl", 0, 1500, boxes=2)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root, check="exists")
    reads = []
    original = Batches.batch

    def spy(self, index, columns=None):
        reads.append(([int(index)], list(columns or [])))
        return original(self, index, columns)

    monkeypatch.setattr(Batches, "batch", spy)
    wanted = sorted(infos.ids(0, 1500))[700:703]  # neighbours in id order: one record batch
    catalog.records(wanted)
    frame_reads = [r for r in reads if "cameras" in r[1]]
    assert len(frame_reads) == 1 and len(frame_reads[0][0]) == 1
    assert "fingerprint" not in frame_reads[0][1] and "source_file" not in frame_reads[0][1]
    reads.clear()
    catalog.table(["split"], wanted)
    index_reads = [r for r in reads if r[1] == ["frame_id", "part", "row"]]
    assert index_reads == [([0], ["frame_id", "part", "row"])]  # 1500 ids: the one 1024-id batch holding them
    assert [r for r in reads if r not in index_reads] == [([700 // ROW_GROUP_ROWS["frames"]], ["split"])]


def test_duckdb_queries_the_live_parts_the_catalog_names(two_files):
    import duckdb

    catalog, _ = two_files
    frames = catalog.dataset("frames")  # noqa: F841 (DuckDB finds it by name)
    rows = duckdb.sql("SELECT split, count(*) FROM frames GROUP BY split ORDER BY split").fetchall()
    assert rows == [("train", 40), ("val", 20)]
    with pytest.raises(ValueError, match="unknown catalog table"):
        catalog.files("nope")


def test_an_empty_catalog_holds_no_frames_and_says_so(tmp_path):
    catalog = FrameCatalog(tmp_path / "never-ingested")
    assert catalog.frame_count() == 0 and catalog.frame_ids().tolist() == [] and catalog.quarantined() == []
    assert catalog.table(["frame_id"]).num_rows == 0
    with pytest.raises(KeyError, match="not in the frame catalog"):
        catalog.records(["frame-1"])
