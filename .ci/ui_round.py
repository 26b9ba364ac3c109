"""Launch a round the way a UI user does: dagster dev (webserver + daemon), GraphQL, sensors carry it.

Usage, from the repository root after `make install`:
    .venv/bin/python .ci/ui_round.py /tmp/ui-round
Starts `dagster dev` on port 3777 with a small synthetic source and the tiny detector
(deployment defaults from the environment, ceal_pipeline/settings.py), adds the
round partition r0000 and launches nightly_acquisition through the webserver's
GraphQL API with K = 6 set on candidate_pool, then waits for the daemon's sensors
to score the shards and export the round. Prints one JSON line (runs by job and
status, failed runs, launch-to-export seconds) and stops every process it started.
Not run by CI (it takes several minutes on 2 cores); `make production-test` (issue
#12) is to grow from it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
URL = f"http://127.0.0.1:{port}/graphql"


def gql(query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(URL, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        out = json.loads(resp.read())
    if "errors" in out:
        raise RuntimeError(out["errors"])
    return out["data"]


REPO = {"repositoryLocationName": "ceal_pipeline", "repositoryName": "__repository__"}
result = {}
try:
    deadline = time.time() + 300
    while True:
        try:
            gql("{ version }")
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(3)
    # Wait for the code location to load.
    while True:
        data = gql("""{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
                       __typename } } } } }""")
        entries = data["workspaceOrError"]["locationEntries"]
        if entries and entries[0]["locationOrLoadError"] and \
                entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
            break
        time.sleep(3)
    added = gql("""mutation($repo: RepositorySelector!, $key: String!) {
        addDynamicPartition(repositorySelector: $repo, partitionsDefName: "acquisition_rounds", partitionKey: $key) {
          __typename ... on PythonError { message } } }""", {"repo": REPO, "key": "r0000"})
    result["add_partition"] = added["addDynamicPartition"]["__typename"]
    run_config = {"ops": {
        "detector": {"config": {"epochs": 3, "max_eval_frames": 16}},
        "candidate_pool": {"config": {"round_zero_mode": "prior", "pool_fraction": 0.5, "shard_size": 32, "k": 6}},
    }}
    started = time.time()
    launched = gql("""mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
          __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
          ... on RunConfigValidationInvalid { errors { message } } } }""",
                   {"params": {"selector": {**REPO, "jobName": "nightly_acquisition"}, "runConfigData": run_config,
                               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "r0000"}]}}})
    result["launch"] = launched["launchRun"]["__typename"]
    if result["launch"] != "LaunchRunSuccess":
        raise RuntimeError(launched)
    # Let the daemon and the sensors carry the round to the export.
    export = work / "ceal" / "outbox" / "round-0000" / "manifest.json"
    deadline = time.time() + 1500
    while not export.is_file() and time.time() < deadline:
        time.sleep(10)
    # Wait for the selection run to finish too.
    time.sleep(15)
    result["launch_to_export_s"] = round(time.time() - started, 1) if export.is_file() else None
    runs = gql("""{ runsOrError { ... on Runs { results { runId jobName status
                 tags { key value } } } } }""")["runsOrError"]["results"]
    result["runs"] = len(runs)
    result["by_job"] = {}
    for run in runs:
        key = f"{run['jobName']}:{run['status']}"
        result["by_job"][key] = result["by_job"].get(key, 0) + 1
    result["failed_runs"] = sum(1 for r in runs if r["status"] == "FAILURE")
    result["exported"] = json.loads(export.read_text())["count"] if export.is_file() else 0
    result["launched_by_sensors"] = sum(1 for r in runs if any(t["key"] == "dagster/sensor_name" for t in r["tags"]))
finally:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
print(json.dumps(result))
