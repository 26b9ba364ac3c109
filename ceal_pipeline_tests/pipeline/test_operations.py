"""Operating a deployment: what `ceal --help` names exists, the nightly schedule starts on only
for real data, shard runs ask Kubernetes for a GPU only on a GPU deployment, and stopping
`make dev` stops Dagster's processes."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from ceal_pipeline.cli import build_parser
from ceal_pipeline.configuration.loading import ENVIRONMENT
from ceal_pipeline.defs.acquisition.jobs import GPU_RUN_K8S_CONFIG, shard_run_tags
from ceal_pipeline.defs.acquisition.schedules import nightly_default_status
from ceal_pipeline.wording import counted

REPO = Path(__file__).resolve().parents[2]
#: Variables read outside the configuration's table (ceal_pipeline/configuration/loading.py).
OTHER_VARIABLES = {"CEAL_CONFIG", "CEAL_DATASETS", "CEAL_NIGHTLY_CRON", "CEAL_NIGHTLY_SCHEDULE"}


def _help_texts(parser: argparse.ArgumentParser):
    for action in parser._actions:
        yield action.help or ""
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub.description or ""
                yield from _help_texts(sub)


def test_every_variable_the_help_names_is_one_the_code_reads():
    named = {v for text in _help_texts(build_parser()) for v in re.findall(r"CEAL_[A-Z_]+", text)}
    assert "CEAL_INBOX" in named  # `ceal labels ingest --inbox`
    assert named <= set(ENVIRONMENT) | OTHER_VARIABLES, sorted(named - set(ENVIRONMENT) - OTHER_VARIABLES)


@pytest.mark.parametrize("kind, environ, status", [
    ("synthetic", {}, dg.DefaultScheduleStatus.STOPPED),  # the demo's source: browsing it starts nothing at 02:00
    ("aimotive", {}, dg.DefaultScheduleStatus.RUNNING),
    ("mmdet3d", {}, dg.DefaultScheduleStatus.RUNNING),
    ("synthetic", {"CEAL_NIGHTLY_SCHEDULE": "on"}, dg.DefaultScheduleStatus.RUNNING),
    ("aimotive", {"CEAL_NIGHTLY_SCHEDULE": "OFF"}, dg.DefaultScheduleStatus.STOPPED),
])
def test_the_nightly_schedule_starts_on_for_real_data_and_off_for_the_synthetic_source(kind, environ, status):
    assert nightly_default_status(kind, environ) == status


def test_a_misspelt_schedule_switch_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="CEAL_NIGHTLY_SCHEDULE='yes': use 'on' or 'off'"):
        nightly_default_status("aimotive", {"CEAL_NIGHTLY_SCHEDULE": "yes"})


@pytest.mark.parametrize("device, asks_for_gpu", [("cpu", False), ("cuda", True), ("cuda:1", True), ("auto", True)])
def test_shard_runs_ask_kubernetes_for_a_gpu_only_when_the_detector_may_use_one(device, asks_for_gpu):
    tags = shard_run_tags(device)
    assert ("dagster-k8s/config" in tags) is asks_for_gpu
    if asks_for_gpu:
        assert json.loads(tags["dagster-k8s/config"]) == GPU_RUN_K8S_CONFIG


def test_counts_read_as_english():
    assert [counted(1, "sequence"), counted(3, "sequence"), counted(0, "frame"), counted(1, "box", "boxes"),
            counted(2, "box", "boxes")] == ["1 sequence", "3 sequences", "0 frames", "1 box", "2 boxes"]


_FAKE_DAGSTER = """#!{python}
# Stands in for `dagster dev`: starts a child (its webserver/daemon) and stops it on SIGTERM, as dagster dev does.
import os, signal, subprocess
child = subprocess.Popen(["sleep", "300"])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
open(os.environ["PIDS_FILE"], "w").write(f"{{os.getpid()}} {{child.pid}}\\n")
child.wait()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _signals_as_from_a_terminal() -> None:
    """``make dev`` started as a user's shell starts it: SIGTERM and SIGINT at their default
    action and not blocked, whatever the test process inherited (a background launch ignores
    SIGINT, and Dagster maps SIGTERM to SIGINT's action) or blocks while it runs."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


def _signal_state(pid: int) -> str:
    """The pending, blocked, ignored and caught signal masks of ``pid`` (for a failure message)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return str(exc)
    return "; ".join(line for line in lines if line.startswith(("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_sigterm_to_make_dev_stops_dagster_and_what_it_started(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    dagster = venv / "bin" / "dagster"
    dagster.write_text(_FAKE_DAGSTER.format(python=sys.executable))
    dagster.chmod(0o755)
    (venv / ".ceal-installed").touch()  # `install` is up to date: newer than pyproject.toml and constraints.txt
    pids_file = tmp_path / "pids"
    make = subprocess.Popen(["make", "-s", "-C", str(REPO), "dev", f"VENV={venv}", f"CEAL_HOME={tmp_path / 'home'}"],
                            env={**os.environ, "PIDS_FILE": str(pids_file)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=_signals_as_from_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while not (pids_file.exists() and pids_file.read_text().endswith("\n")):
            assert make.poll() is None, make.stderr.read().decode()
            assert time.monotonic() < deadline, "the stand-in dagster never started"
            time.sleep(0.1)
        dagster_pid, child_pid = map(int, pids_file.read_text().split())

        make.send_signal(signal.SIGTERM)
        try:
            make.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make dev outlived SIGTERM by 30 s; its signal state: {_signal_state(make.pid)}")
        deadline = time.monotonic() + 30
        while (_alive(dagster_pid) or _alive(child_pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(dagster_pid), "dagster dev outlived `make dev`"
        assert not _alive(child_pid), "a process dagster dev started outlived `make dev`"
    finally:
        if make.poll() is None:
            make.kill()
        for pid in [int(p) for p in (pids_file.read_text().split() if pids_file.exists() else [])]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
