"""Launch a round the way a UI user does: dagster dev (webserver + daemon), GraphQL, sensors carry it.

Usage, from the repository root after `make install`:
    .venv/bin/python .ci/ui_round.py /tmp/ui-round
Starts `dagster dev` on port 3777 with a small synthetic source and the tiny detector
(CEAL_* variables amending the project configuration, ceal_pipeline/configuration), adds the
round partition r0000 and launches nightly_acquisition through the webserver's
GraphQL API with K = 6 set on candidate_pool, then waits for the daemon's sensors
to score the shards and export the round. Prints one JSON line (runs by job and
status, failed runs, launch-to-export seconds) and stops every process it started.
Not run by CI; `make production-test` (.ci/production_round.py) runs the same round
in the production topology (Postgres, code server, webserver, daemon), and both
talk to the webserver through webserver_graphql.py.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from webserver_graphql import Webserver, runs_by_job_and_status

# A terminated check still stops the dagster processes it started (the finally below).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
work = Path(sys.argv[1]).resolve()
shutil.rmtree(work, ignore_errors=True)
(work / "dagster_home").mkdir(parents=True)
shutil.copy("dagster.yaml", work / "dagster_home" / "dagster.yaml")
port = 3777
env = {
    **os.environ,
    "DAGSTER_HOME": str(work / "dagster_home"),
    "CEAL_HOME": str(work / "ceal"),
    "CEAL_SYNTHETIC_FRAMES": "160",
    "CEAL_SEED_LABELED": "24",
    "CEAL_DETECTOR_CONFIG": "bevfusion_tiny",
    "CEAL_NIGHTLY_CRON": "0 2 * * *",
}
log = open(work / "dagster_dev.log", "w")
proc = subprocess.Popen([".venv/bin/dagster", "dev", "-w", "workspace.yaml", "-p", str(port)], env=env,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
api = Webserver(port)
result = {}
try:
    api.wait_until_loaded(300, alive=lambda: proc.poll() is None)
    result["add_partition"] = api.add_dynamic_partition("acquisition_rounds", "r0000")
    run_config = {"ops": {
        "detector": {"config": {"epochs": 3, "max_eval_frames": 16}},
        "candidate_pool": {"config": {"round_zero_mode": "prior", "pool_fraction": 0.5, "shard_size": 32, "k": 6}},
    }}
    started = time.time()
    api.launch_run("nightly_acquisition", run_config, "r0000")
    result["launch"] = "LaunchRunSuccess"
    # Let the daemon and the sensors carry the round to the export.
    export = work / "ceal" / "outbox" / "round-0000" / "manifest.json"
    deadline = time.time() + 1500
    while not export.is_file() and time.time() < deadline:
        time.sleep(10)
    # Wait for the selection run to finish too.
    time.sleep(15)
    result["launch_to_export_s"] = round(time.time() - started, 1) if export.is_file() else None
    runs = api.runs()
    result["runs"] = len(runs)
    result["by_job"] = runs_by_job_and_status(runs)
    result["failed_runs"] = sum(1 for r in runs if r["status"] == "FAILURE")
    result["exported"] = json.loads(export.read_text())["count"] if export.is_file() else 0
    result["launched_by_sensors"] = sum(1 for r in runs if "dagster/sensor_name" in r["tags"])
finally:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
print(json.dumps(result))
