"""What a UI user does, through the Dagster webserver's GraphQL API (the calls the UI itself makes).

Shared by the end-to-end checks in this folder: ``ui_round.py`` (``dagster dev``)
and ``production_round.py`` (``make production-test``: Postgres, code server,
webserver and daemon as separate processes). Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

LOCATION = "ceal_pipeline"
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


class Webserver:
    """The GraphQL endpoint of a running ``dagster-webserver`` (or ``dagster dev``) on ``port``."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.url = f"http://{host}:{port}/graphql"

    def query(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            out = json.loads(response.read())
        if "errors" in out:
            raise RuntimeError(f"GraphQL errors from {self.url}: {out['errors']}")
        return out["data"]

    def wait_until_loaded(self, timeout_s: float, alive=lambda: True) -> None:
        """Wait until the webserver answers and has loaded the code location ``ceal_pipeline``.

        ``alive()`` is asked between tries, so that a process that died stops the wait at once.
        """
        deadline = time.time() + timeout_s
        last = "no answer yet"
        while time.time() < deadline:
            if not alive():
                raise RuntimeError(f"a process exited while waiting for {self.url} ({last})")
            try:
                data = self.query("""{ workspaceOrError { __typename ... on Workspace { locationEntries {
                    name locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = repr(exc)
                time.sleep(2)
                continue
            entries = data["workspaceOrError"].get("locationEntries") or []
            loaded = [e for e in entries if e["name"] == LOCATION and e["locationOrLoadError"]]
            if loaded and loaded[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                return
            # A load error may be a code server still starting: the webserver reloads the location
            # when the server comes up, so keep asking until the timeout and report the last error.
            last = f"workspace: {entries}"
            time.sleep(2)
        raise TimeoutError(f"{self.url} did not load code location {LOCATION} within {timeout_s:.0f} s ({last})")

    def add_dynamic_partition(self, partitions_def: str, key: str) -> str:
        """Add ``key`` to a dynamic partitions definition (the UI's "Add partition"); returns the result type."""
        data = self.query("""mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
            addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
              __typename ... on PythonError { message } ... on UnauthorizedError { message } } }""",
                          {"repo": REPOSITORY, "name": partitions_def, "key": key})
        result = data["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise RuntimeError(f"adding partition {key} to {partitions_def} failed: {result}")
        return result["__typename"]

    def launch_run(self, job: str, run_config: dict, partition_key: str) -> str:
        """Launch ``job`` for ``partition_key`` with ``run_config`` (the Launchpad's "Launch run"); returns the run id."""
        data = self.query("""mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
              __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
              ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }""",
                          {"params": {"selector": {**REPOSITORY, "jobName": job}, "runConfigData": run_config,
                                      "executionMetadata": {"tags": [{"key": "dagster/partition",
                                                                      "value": partition_key}]}}})
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} for {partition_key} failed: {result}")
        return result["run"]["runId"]

    def materialized_partitions(self, asset: str) -> dict[str, float]:
        """``{partition key: time of its first materialization (s since the epoch)}`` of ``asset``."""
        data = self.query("""query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { __typename
                              ... on Asset { assetMaterializations { partition timestamp } } } }""",
                          {"path": [asset]})
        if data["assetOrError"]["__typename"] != "Asset":
            return {}  # never materialized yet
        first: dict[str, float] = {}
        for event in data["assetOrError"]["assetMaterializations"]:
            at = int(event["timestamp"]) / 1000
            first[event["partition"]] = min(at, first.get(event["partition"], at))
        return first

    def runs(self) -> list[dict]:
        """Every run of the instance: id, job, status, creation/end time (s since the epoch) and tags as a dict."""
        data = self.query("""{ runsOrError { __typename ... on Runs { results { runId jobName status
                              creationTime endTime tags { key value } } } } }""")
        if data["runsOrError"]["__typename"] != "Runs":
            raise RuntimeError(f"listing runs failed: {data['runsOrError']}")
        return [{**run, "tags": {t["key"]: t["value"] for t in run["tags"]}}
                for run in data["runsOrError"]["results"]]


def runs_by_job_and_status(runs: list[dict]) -> dict[str, int]:
    """``{"job:STATUS": count}``, the summary both checks print."""
    counts: dict[str, int] = {}
    for run in runs:
        key = f"{run['jobName']}:{run['status']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
