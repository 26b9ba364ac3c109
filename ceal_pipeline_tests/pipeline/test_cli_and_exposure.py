"""The command line answers user errors with one line and waits out a busy history; the
export is readable by the vendor whatever the umask, and says loudly when its URIs are local."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ceal_pipeline.cli import main
from ceal_pipeline.cli.arguments import waiting_out_busy_history
from ceal_pipeline.core.history import AcquisitionHistory, HistoryLocked
from ceal_pipeline.export import ExportedFrame, write_vendor_export
from ceal_pipeline.export.sensor_uris import SensorUriRule

REPO = Path(__file__).resolve().parents[2]


def test_a_user_error_raised_deep_in_a_command_prints_one_line_naming_the_fix(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["vendor", "selfcheck", "--source", "mmdet3d", "--root", str(tmp_path / "empty"),
                 "--format", "openlabel"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ceal vendor: no *.pkl info file in") and err.count("\n") == 1


def test_a_bug_still_shows_its_traceback(monkeypatch):
    monkeypatch.setattr("ceal_pipeline.cli.vendor.run", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["vendor", "selfcheck", "--source", "mmdet3d", "--root", ".", "--format", "openlabel"])


def test_labels_ingest_refuses_a_new_history_path_and_creates_nothing(tmp_path, capsys):
    delivery = tmp_path / "acme.json"
    delivery.write_text("{}")
    with pytest.raises(SystemExit, match="no acquisition history"):
        main(["labels", "ingest", str(delivery), "--format", "openlabel", "--round", "1",
              "--history", str(tmp_path / "new" / "h.duckdb"), "--inbox", str(tmp_path / "inbox")])
    assert not (tmp_path / "new").exists() and not (tmp_path / "inbox").exists()


def test_a_busy_history_is_waited_out_and_then_the_operation_runs_once():
    calls, waits = [], []

    def operation():
        calls.append(1)
        if len(calls) < 3:
            raise HistoryLocked("open for writing in another process")
        return "done"

    assert waiting_out_busy_history(operation, "labels ingest", sleep=waits.append, wait_s=5.0) == "done"
    assert len(calls) == 3 and waits == [5.0, 5.0]


def test_a_history_that_stays_busy_ends_in_one_line_not_a_traceback():
    def operation():
        raise HistoryLocked("open for writing in another process")

    with pytest.raises(SystemExit, match="stayed busy for 15 s"):
        waiting_out_busy_history(operation, "labels retire", attempts=3, wait_s=5.0, sleep=lambda s: None)


def test_labels_retire_waits_for_a_round_that_holds_the_history_open(tmp_path, monkeypatch, capsys):
    history = AcquisitionHistory(tmp_path / "h.duckdb", threads=1)
    history.register_frame_arrays(["seq0-frame000"], ["seq0"], np.zeros(1), ["/d/a.bin"])
    history.add_labels(["seq0-frame000"], round=0, source="seed")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(3); con.close()", str(tmp_path / "h.duckdb")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.setattr("ceal_pipeline.cli.arguments.BUSY_WAIT_S", 1.0)
    started = time.monotonic()
    code = main(["labels", "retire", "--frame", "seq0-frame000", "--reason", "drive deleted",
                 "--history", str(tmp_path / "h.duckdb")])
    holder.wait()
    out, err = capsys.readouterr()
    assert code == 0 and '"retired": 1' in out
    assert "busy" in err and time.monotonic() - started >= 1.0


def test_labels_retire_missing_from_source_retires_exactly_the_labeled_frames_the_catalog_lost(
        tmp_path, monkeypatch, capsys):
    from ceal_pipeline.catalog import FrameCatalog
    from ceal_pipeline.configuration import project_config
    from ceal_pipeline_tests.badinput.corpus import write_info_dataset

    write_info_dataset(tmp_path / "source")
    catalog = FrameCatalog(tmp_path / "catalog")
    catalog.ingest("mmdet3d", tmp_path / "source", lidar_prefix="lidar", camera_prefix="camera", workers=1)
    ids = ["frame-0", "frame-1", "frame-2", "frame-9"]  # frame-9 left the source
    history = AcquisitionHistory(tmp_path / "h.duckdb", threads=1)
    history.register_frame_arrays(ids, ["scene-a"] * 4, np.arange(4.0), [f"/d/{i}.bin" for i in ids])
    history.add_labels(["frame-1", "frame-9"], round=0, source="seed")
    for variable, value in {"CEAL_HOME": tmp_path, "CEAL_CATALOG_DIR": tmp_path / "catalog",
                            "CEAL_HISTORY_PATH": tmp_path / "h.duckdb", "CEAL_SOURCE_KIND": "mmdet3d",
                            "CEAL_DATA_ROOT": tmp_path / "source"}.items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.delenv("CEAL_CONFIG", raising=False)
    project_config.cache_clear()
    try:
        assert main(["labels", "retire", "--missing-from-source", "--reason", "deleted upstream"]) == 0
    finally:
        project_config.cache_clear()
    assert '"frames": ["frame-9"]' in capsys.readouterr().out
    assert list(history.labeled_frames()) == ["frame-1"]


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o000])
def test_the_export_is_0755_folders_and_0644_files_whatever_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        export = write_vendor_export(tmp_path / "outbox", 1, "m1", [ExportedFrame("seq01-000004", "seq01", 2.5)],
                                     files={"openlabel/seq01-000004.json": b"{}\n", "tasks.jsonl": b"{}\n"})
    finally:
        os.umask(previous)
    modes = {p.relative_to(export.folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [export.folder, *export.folder.rglob("*")]}
    assert modes.pop(".") == 0o755 and modes.pop("openlabel") == 0o755
    assert set(modes.values()) == {0o644}


def test_export_modes_come_from_ceal_yaml(tmp_path):
    from ceal_pipeline.configuration import load_project_config
    from ceal_pipeline.defs.resources import resources_for

    (tmp_path / "ceal.yaml").write_text("preset: cpu-small\nstorage:\n  export_folder_mode: 0750\n"
                                        "  export_file_mode: 0640\n")
    exporter = resources_for(load_project_config(tmp_path / "ceal.yaml", environ={}))["exporter"]
    assert (exporter.folder_mode, exporter.file_mode) == (0o750, 0o640)
    export = exporter.export(1, "m1", [ExportedFrame("seq01-000004", "seq01", 2.5)], run_id="r")
    assert stat.S_IMODE(export.folder.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in export.folder.iterdir()} == {0o640}


def test_local_file_uris_come_with_a_loud_warning_and_a_base_uri_silences_it(tmp_path):
    warning = SensorUriRule(str(tmp_path)).local_uri_warning()
    assert "source.uri_base" in warning and tmp_path.as_uri() in warning
    assert SensorUriRule(str(tmp_path), "s3://acme/data").local_uri_warning() is None


def test_compose_publishes_the_unauthenticated_webserver_on_loopback_by_default():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    (published,) = compose["services"]["webserver"]["ports"]
    assert published == "${CEAL_UI_BIND:-127.0.0.1}:3000:3000"
    readme = (REPO / "docker" / "README.md").read_text()
    assert "## Exposure" in readme and "auth_basic" in readme
