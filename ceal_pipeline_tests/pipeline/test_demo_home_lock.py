"""`ceal demo` refuses a home another demo is using, and touches nothing of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ceal_pipeline.cli import main


def test_a_second_demo_on_the_same_home_is_refused_and_leaves_the_first_ones_state(tmp_path):
    home = tmp_path / "demo"
    home.mkdir()
    (home / "history.duckdb").write_bytes(b"the running demo's history")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; h = open(sys.argv[1], 'a+'); fcntl.flock(h, fcntl.LOCK_EX); "
         "h.write(f'{os.getpid()}\\n'); h.flush(); print('locked', flush=True); time.sleep(60)",
         str(home / ".demo.lock")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit, match=rf"another demo \(pid {holder.pid}\) is running on .*--home"):
            main(["demo", "--home", str(home), "--frames", "50", "--seed-labeled", "5", "--k", "5"])
    finally:
        holder.kill()
        holder.wait()
    assert (home / "history.duckdb").read_bytes() == b"the running demo's history"
