"""A dataset reached through a symbolic link is the same dataset: its frames, catalog and
configuration compare equal however the root was spelled (issue: `make test` with ../shared a link)."""

from __future__ import annotations

import yaml

from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.catalog import FrameCatalog
from ceal_pipeline.cli import main
from ceal_pipeline.frames.sources import read_source
from ceal_pipeline_tests.catalog.conftest import aimotive_sequence  # noqa: F401 - the shared fixture
from ceal_pipeline_tests.catalog.info_folder import InfoFolder
from ceal_pipeline_tests.catalog.same_records import assert_same_records



def same_path(a, b) -> bool:
    """``a`` and ``b`` name the same location however each was spelled."""
    return canonical_path(a) == canonical_path(b)

def _link(tmp_path, target):
    link = tmp_path / "shared-link"
    link.symlink_to(target, target_is_directory=True)
    return link


def test_a_link_a_relative_path_and_the_target_are_the_same_path(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    link = _link(tmp_path, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert same_path(link, tmp_path / "data") and same_path("shared-link", "data")
    assert canonical_path("shared-link/../data") == canonical_path(tmp_path / "data")
    assert not same_path(link, tmp_path)


def test_frames_read_through_a_link_equal_the_catalogs_read_through_the_target(tmp_path):
    infos = InfoFolder(tmp_path / "source")
    infos.write("a_train.pkl", 0, 12)
    link = _link(tmp_path, infos.root)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", infos.root)
    through_link = read_source("mmdet3d", link).frames
    assert str(link) not in through_link[0].lidar_path  # stored as the catalog stores it
    assert_same_records(through_link, catalog.records([r.frame_id for r in through_link]))
    # Ingesting the same files through the link finds nothing new and removes nothing.
    report = catalog.ingest("mmdet3d", link)
    assert (report.units_parsed, report.frames_added, report.frames_removed) == (0, 0, 0)


def test_the_real_sequence_through_a_link_reads_as_through_its_target(tmp_path, aimotive_sequence):  # noqa: F811
    link = _link(tmp_path, aimotive_sequence)
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("aimotive", canonical_path(aimotive_sequence))
    expected = read_source("aimotive", link).frames
    assert_same_records(expected, catalog.records([r.frame_id for r in expected]))


def test_init_through_a_link_writes_the_root_the_catalog_uses(tmp_path, aimotive_sequence):  # noqa: F811
    link = _link(tmp_path, aimotive_sequence)
    home = tmp_path / "home"
    assert main(["init", "--source", "aimotive", "--root", str(link), "--preset", "cpu-small", "--home", str(home),
                 "--limit", "1"]) == 0
    root = yaml.safe_load((home / "ceal.yaml").read_text())["source"]["root"]
    assert root == str(canonical_path(aimotive_sequence)) and same_path(root, link)
