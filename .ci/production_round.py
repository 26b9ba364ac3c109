"""`make production-test`: unattended rounds in the production topology, end to end.

Usage, from the repository root after `make install` (the Makefile target installs
Debian's postgresql first when it is missing):
    .venv/bin/python .ci/production_round.py WORKDIR [--rounds 2] [--timeout-s 2400]

Starts, each as its own process group:
  1. a real PostgreSQL server (initdb + postgres, as the `postgres` user when run as
     root, since initdb refuses root) on a free loopback port, with a password;
  2. a Dagster code server (`dagster code-server start`) serving ceal_pipeline;
  3. `dagster-webserver` and 4. `dagster-daemon run`, both on the instance
     docker/dagster.yaml (run, event-log and schedule storage in PostgreSQL through
     dagster-postgres, QueuedRunCoordinator, the gpu/duckdb pools) and on a workspace
     that points at the code server over gRPC.
Then, as a UI user would, it adds round r0000 and launches nightly_acquisition
through the webserver's GraphQL API with a non-default configuration (among it
the rank combination ``localization_and_heatmap_ranks``, whose shards the merge
must rank together: checked against the shard files afterwards). The daemon
and the sensors carry the round through every shard to the export with no other
call; the schedule (every minute here, CEAL_NIGHTLY_CRON) opens each next round the
same way. Prints one JSON line and exits 1 unless every round exported with no
failed run. Every process it started is stopped on the way out (also on failure,
Ctrl-C or SIGTERM); logs stay in WORKDIR/logs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from webserver_graphql import LOCATION, Webserver, runs_by_job_and_status

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's dagster, dagster-webserver, dagster-daemon

# The round a UI user launches: non-default round parameters and a short training.
UI_RUN_CONFIG = {"ops": {
    "detector": {"config": {"epochs": 2, "max_eval_frames": 8}},
    "candidate_pool": {"config": {"round_zero_mode": "prior", "pool_fraction": 0.4, "shard_size": 16,
                                  "temperature": 0.5, "k": 6, "per_sequence_cap": 3,
                                  "acquisition_fn": "localization_and_heatmap_ranks"}},
}}
# The deployment's project configuration (ceal.yaml, CEAL_CONFIG): a tiny synthetic source and the tiny
# detector on the CPU, so a round takes minutes on 2 cores; the rounds the schedule opens use its round
# parameters (the UI launch above overrides some of them for r0000, as a Launchpad user would).
PROJECT_CONFIG = {
    "preset": "cpu-small",
    "source": {"kind": "synthetic", "synthetic_frames": 120, "seed_labeled": 16},
    "detector": {"config": "bevfusion_tiny", "device": "cpu", "epochs": 2, "fine_tune_epochs": 1,
                 "max_eval_frames": 8},
    "round": {"pool_fraction": 0.3, "shard_size": 16, "k": 4, "per_sequence_cap": 3},
}


def project_environment(work: Path) -> dict[str, str]:
    """The deployment's configuration, as the code server (and so every run it launches) sees it."""
    config = work / "ceal.yaml"
    config.write_text(yaml.safe_dump(PROJECT_CONFIG, sort_keys=False))
    return {
        "CEAL_CONFIG": str(config),
        "CEAL_HOME": str(work / "ceal"),
        "CEAL_NIGHTLY_CRON": os.environ.get("CEAL_NIGHTLY_CRON", "* * * * *"),
        "CEAL_NIGHTLY_SCHEDULE": "on",  # the synthetic source's default is off; this test is about the schedule
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        # This checkout's package, also where the venv holds another install of it.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """The processes this script started, each in its own session, stopped in reverse order."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.started.append((name, proc))
        return proc

    def all_alive(self) -> bool:
        dead = [(name, proc.returncode) for name, proc in self.started if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"process exited: {dead} (logs in {self.log_dir})")
        return True

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name, proc in reversed(self.started):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class PostgresServer:
    """A throwaway PostgreSQL cluster from Debian's postgresql package, on a free loopback port."""

    def __init__(self, processes: Processes):
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        if not bindirs:
            raise RuntimeError("PostgreSQL is not installed: run `apt-get install -y postgresql` "
                               "(make production-test does it when run as root)")
        self.bin = Path(bindirs[-1])
        self.processes = processes
        self.port = free_port()
        self.user, self.password, self.db = "dagster", secrets.token_hex(12), "dagster"
        # initdb refuses root: the cluster belongs to the postgres user when we are root.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = Path(tempfile.mkdtemp(prefix="ceal-pg-"))

    def _own(self, path: Path) -> None:
        if self.as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self._own(self.data)
        pwfile = self.data / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        cluster = self.data / "cluster"
        subprocess.run([*self.as_user, str(self.bin / "initdb"), "-D", str(cluster), "-U", self.user,
                        "--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.processes.start("postgres", [*self.as_user, str(self.bin / "postgres"), "-D", str(cluster),
                                          "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                                          "-c", f"unix_socket_directories={self.data}"], env=dict(os.environ))
        deadline = time.time() + 60
        while subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             stdout=subprocess.DEVNULL).returncode != 0:
            self.processes.all_alive()
            if time.time() > deadline:
                raise TimeoutError("PostgreSQL did not accept connections within 60 s")
            time.sleep(0.5)
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                        self.db], check=True, env={**os.environ, "PGPASSWORD": self.password})

    def sql(self, statement: str) -> str:
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                              "-d", self.db, "-tAc", statement], check=True, capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": self.password})
        return out.stdout.strip()

    def environment(self) -> dict[str, str]:
        """The variables docker/dagster.yaml reads."""
        return {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(self.port),
                "DAGSTER_POSTGRES_USER": self.user, "DAGSTER_POSTGRES_PASSWORD": self.password,
                "DAGSTER_POSTGRES_DB": self.db}

    def remove(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)


def wait_for_code_server(port: int, processes: Processes, timeout_s: float = 600) -> None:
    """Wait until the code server answers gRPC health checks (it imports the whole pipeline first)."""
    deadline = time.time() + timeout_s
    while subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        processes.all_alive()
        if time.time() > deadline:
            raise TimeoutError(f"the code server on port {port} did not answer within {timeout_s:.0f} s")
        time.sleep(2)


def exported_manifest(work: Path, round_index: int) -> dict | None:
    path = work / "ceal" / "outbox" / f"round-{round_index:04d}" / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ranked_over_all_shards(work: Path, round_index: int = 0) -> dict:
    """Whether the history holds the UI round's rank combination ranked over all of its shards:
    the values the merge ingested against the terms the workers wrote, read back from the files."""
    import numpy as np
    import pyarrow.parquet as pq

    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.core.ranks import rank_normalised_combination

    shards = sorted((work / "ceal" / "shards" / f"round-{round_index:04d}").glob("s*.parquet"))
    tables = [pq.read_table(path) for path in shards]
    weights = json.loads(pq.read_metadata(shards[0]).metadata[b"ceal"])["term_weights"]
    ids = [f for t in tables for f in t.column("frame_id").to_pylist()]
    terms = {name: np.concatenate([t.column(f"term_{name}").to_numpy() for t in tables]) for name in weights}
    expected = rank_normalised_combination(terms, weights)
    stored = AcquisitionHistory(work / "ceal" / "history.duckdb").round_scores(round_index)
    by_id = dict(zip(stored.frame_ids, stored.scores))
    within = np.concatenate([t.column("score").to_numpy() for t in tables])
    return {"shards": len(shards), "frames": len(ids),
            "merged_equals_ranks_over_all_shards": bool(np.allclose([by_id[f] for f in ids], expected)),
            "differs_from_within_shard_ranks": bool(not np.allclose(within, expected))}


def run_rounds(work: Path, rounds: int, timeout_s: float, result: dict) -> None:
    """Start the topology, carry ``rounds`` rounds to the export, and fill ``result`` as it goes."""
    logs = work / "logs"
    logs.mkdir(parents=True)
    processes = Processes(logs)
    postgres = PostgresServer(processes)
    result["rounds_wanted"] = rounds
    try:
        postgres.start()
        result["postgres"] = postgres.sql("SHOW server_version")
        home = work / "dagster_home"
        home.mkdir()
        shutil.copy(REPO_ROOT / "docker" / "dagster.yaml", home / "dagster.yaml")
        grpc_port, web_port = free_port(), free_port()
        (work / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION}}]}))
        dagster_env = {**os.environ, "DAGSTER_HOME": str(home), **postgres.environment()}
        # Only the code server sees the project's configuration: it evaluates the schedule and the
        # sensors and launches every run, so webserver and daemon need nothing but the instance.
        processes.start("code_server", [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
                                        "-p", str(grpc_port), "-m", "ceal_pipeline.definitions",
                                        "--location-name", LOCATION],
                        env={**dagster_env, **project_environment(work)}, cwd=REPO_ROOT)
        wait_for_code_server(grpc_port, processes)
        processes.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                                      "-w", str(work / "workspace.yaml")], env=dagster_env, cwd=work)
        api = Webserver(web_port)
        api.wait_until_loaded(600, alive=processes.all_alive)

        # The UI user's round, queued before the daemon runs: an every-minute schedule
        # started first could open r0000 itself, with the deployment's parameters.
        api.add_dynamic_partition("acquisition_rounds", "r0000")
        launched_at = {"r0000": time.time()}
        api.launch_run("nightly_acquisition", UI_RUN_CONFIG, "r0000")
        processes.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(work / "workspace.yaml")],
                        env=dagster_env, cwd=work)

        deadline = time.time() + timeout_s
        exported: dict[str, float] = {}
        keys = [f"r{i:04d}" for i in range(rounds)]
        while time.time() < deadline:
            processes.all_alive()
            exported = {k: t for k, t in api.materialized_partitions("vendor_export").items() if k in keys}
            runs = api.runs()
            for run in runs:
                key = run["tags"].get("dagster/partition", "")
                if run["jobName"] == "nightly_acquisition" and key not in launched_at:
                    launched_at[key] = run["creationTime"]
            failed = [r for r in runs if r["status"] == "FAILURE"]
            selection_done = {r["tags"].get("dagster/partition") for r in runs
                              if r["jobName"] == "round_selection" and r["status"] == "SUCCESS"}
            if failed or all(k in exported and k in selection_done for k in keys):
                break
            time.sleep(10)
        # Stop the daemon first, so that nothing new starts while the result is read.
        for name, proc in processes.started:
            if name == "daemon" and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        runs = api.runs()
        result["rounds"] = {}
        for key in keys:
            index = int(key[1:])
            manifest = exported_manifest(work, index)
            of_round = [r for r in runs if r["tags"].get("dagster/partition", "").split("-")[0] == key]
            result["rounds"][key] = {
                "opened_by": "ui" if key == "r0000" else "schedule",
                "runs": len(of_round),
                "shard_runs": sum(1 for r in of_round if r["jobName"] == "score_candidate_shards"),
                "exported_frames": manifest["count"] if manifest else 0,
                "launch_to_export_s": round(exported[key] - launched_at[key], 1)
                if key in exported and key in launched_at else None,
            }
        result["rounds_exported"] = sum(1 for key in keys if key in exported and exported_manifest(work, int(key[1:])))
        result["runs"] = len(runs)
        result["failed_runs"] = sum(1 for r in runs if r["status"] == "FAILURE")
        result["runs_by_job"] = runs_by_job_and_status(runs)
        result["launched_by_sensors"] = sum(1 for r in runs if "dagster/sensor_name" in r["tags"])
        result["launched_by_schedule"] = sum(1 for r in runs if "dagster/schedule_name" in r["tags"])
        result["launch_to_export_s"] = result["rounds"]["r0000"]["launch_to_export_s"]
        # Dagster's own record of the runs lives in PostgreSQL, not in files under DAGSTER_HOME.
        result["runs_in_postgres"] = int(postgres.sql("SELECT count(*) FROM runs"))
        result["instance"] = {"storage": "postgres", "run_coordinator": "QueuedRunCoordinator",
                              "processes": [name for name, _ in processes.started]}
    finally:
        processes.stop_all()
        postgres.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--rounds", type=int, default=2, help="rounds to carry to the export: r0000 from the UI, "
                        "then the schedule's")
    parser.add_argument("--timeout-s", type=float, default=2400, help="give up after this long (seconds)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1 (r0000, the round launched through the UI)")
    # SIGTERM and Ctrl-C unwind through run_rounds' finally, which stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.time()
    result: dict = {}
    try:
        run_rounds(work, args.rounds, args.timeout_s, result)
        result["r0000_rank_combination"] = ranked_over_all_shards(work)
    except Exception as exc:  # still one JSON line, saying what went wrong; the logs say the rest
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(result))
    ranked = result.get("r0000_rank_combination", {})
    ok = (result.get("rounds_exported") == args.rounds and result.get("failed_runs") == 0
          and ranked.get("shards", 0) > 1 and ranked.get("merged_equals_ranks_over_all_shards") is True
          and ranked.get("differs_from_within_shard_ranks") is True)
    if not ok:
        print(f"production test FAILED: logs in {work / 'logs'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
