"""The deployment files say what Dagster and Kubernetes accept, and agree with each other.

Docker and Helm are not on this project's machines: these tests validate the
files with the schemas of the libraries that read them (Dagster's instance
schema, dagster-postgres, dagster-k8s's K8sRunLauncher) and the Job manifests
that dagster-k8s generates from them with kubernetes-validate.
`make production-test` runs docker/dagster.yaml itself against a real PostgreSQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster_k8s import K8sRunLauncher
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from ceal_pipeline.defs.acquisition.jobs import GPU_RUN_K8S_CONFIG

from . import helm_instance

DOCKER = Path(__file__).resolve().parents[2] / "docker"
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes release still maintained when this was written
INSTANCE_ENV = ("DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT", "DAGSTER_POSTGRES_USER",
                "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _valid(config_type, value) -> dict:
    result = process_config(config_type, value)
    assert result.success, [error.message for error in result.errors]
    return result.value


def _env_names(config) -> set[str]:
    """Every ``{env: NAME}`` source in a Dagster config."""
    if isinstance(config, dict):
        if set(config) == {"env"}:
            return {config["env"]}
        return set().union(*(_env_names(value) for value in config.values())) if config else set()
    if isinstance(config, list):
        return set().union(*(_env_names(value) for value in config)) if config else set()
    return set()


# --- docker/dagster.yaml: the instance of compose and of `make production-test` ---------------------


@pytest.fixture
def postgres_env(monkeypatch):
    for name, value in zip(INSTANCE_ENV, ("postgres", "5432", "dagster", "secret", "dagster")):
        monkeypatch.setenv(name, value)


def test_the_compose_instance_keeps_runs_events_and_schedules_in_postgres(postgres_env):
    config, _ = dagster_instance_config(str(DOCKER))
    assert set(config["storage"]) == {"postgres"}
    storage = _valid(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert storage["postgres_db"]["port"] == 5432 and storage["postgres_db"]["scheme"] == "postgresql+psycopg2"
    # Only connection settings come from the environment, and the file names exactly these.
    assert _env_names(config) == set(INSTANCE_ENV)


def test_the_compose_instance_queues_runs_and_limits_the_gpu_and_duckdb_pools(postgres_env):
    config, _ = dagster_instance_config(str(DOCKER))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]


# --- docker/compose.yaml ----------------------------------------------------------------------------


def _compose() -> dict:
    return _load(DOCKER / "compose.yaml")


def _dagster_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if name != "postgres"}


def test_every_dagster_container_mounts_the_instance_and_gets_every_variable_it_reads():
    compose = _compose()
    read = _env_names(_load(DOCKER / "dagster.yaml"))
    services = _dagster_services(compose)
    assert set(services) == {"code-server-cpu", "code-server-gpu", "webserver", "daemon"}
    for name, service in services.items():
        environment = service["environment"]
        assert read <= set(environment), f"{name} lacks {sorted(read - set(environment))}"
        home = environment["DAGSTER_HOME"]
        assert f"./dagster.yaml:{home}/dagster.yaml:ro" in service["volumes"], name
    postgres = compose["services"]["postgres"]["environment"]
    for service in services.values():
        assert service["environment"]["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["DAGSTER_POSTGRES_USER"] == postgres["POSTGRES_USER"]
        assert service["environment"]["DAGSTER_POSTGRES_DB"] == postgres["POSTGRES_DB"]
        assert service["environment"]["DAGSTER_POSTGRES_PASSWORD"] == postgres["POSTGRES_PASSWORD"]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_webserver_and_daemon_reach_the_code_server_that_either_profile_starts():
    compose = _compose()
    services = compose["services"]
    (location,) = _load(DOCKER / "workspace.yaml")["load_from"]
    server = location["grpc_server"]
    for name in ("code-server-cpu", "code-server-gpu"):
        service = services[name]
        assert server["host"] in service["networks"]["default"]["aliases"], name
        assert int(_flag(service["command"], "-p")) == server["port"]
        assert _flag(service["command"], "-m") == "ceal_pipeline.definitions"
        assert _flag(service["command"], "--location-name") == server["location_name"] == "ceal_pipeline"
    assert services["code-server-cpu"]["profiles"] == ["cpu"] and services["code-server-gpu"]["profiles"] == ["gpu"]
    for name in ("webserver", "daemon"):
        workspace = _flag(services[name]["command"], "-w")
        assert f"./workspace.yaml:{workspace}:ro" in services[name]["volumes"], name
    assert (DOCKER / ".env").read_text().strip().endswith("COMPOSE_PROFILES=cpu")


def test_the_gpu_profile_reserves_the_hosts_nvidia_gpus_and_scores_on_cuda():
    service = _compose()["services"]["code-server-gpu"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert service["environment"]["CEAL_DEVICE"] == "cuda"
    assert service["build"]["args"]["FORCE_CUDA"] == "1"
    # Every build arg it passes is declared in the Dockerfile (an undeclared one is silently dropped).
    declared = set(re.findall(r"^ARG (\w+)", (DOCKER / "Dockerfile").read_text(), re.MULTILINE))
    assert set(service["build"]["args"]) <= declared


# --- docker/k8s/values.yaml: the official Dagster chart ---------------------------------------------


@pytest.fixture(scope="module")
def values() -> dict:
    return _load(DOCKER / "k8s" / "values.yaml")


def test_the_chart_instance_passes_dagsters_instance_schema(values, tmp_path):
    config = helm_instance.instance_config(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["run_launcher"]["class"] == "K8sRunLauncher"
    assert validated["concurrency"] == {"pools": {"default_limit": 1}, "runs": {"max_concurrent_runs": 16}}


def test_the_chart_instance_keeps_dagsters_storage_in_postgres(values, monkeypatch):
    monkeypatch.setenv(helm_instance.PASSWORD_ENV, "secret")
    config = helm_instance.instance_config(values)
    for key, storage in (("run_storage", PostgresRunStorage), ("event_log_storage", PostgresEventLogStorage),
                         ("schedule_storage", PostgresScheduleStorage)):
        assert config[key]["class"] == storage.__name__
        assert _valid(storage.config_type(), config[key]["config"])["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_the_chart_instance_loads_with_its_queue_pools_monitoring_and_retries(values, tmp_path):
    # Everything but the storage and the launcher, which need a database and a cluster to start.
    config = helm_instance.instance_config(values)
    for key in ("run_storage", "event_log_storage", "schedule_storage", "run_launcher"):
        config.pop(key)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.run_monitoring_enabled and instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_the_k8s_run_launcher_config_passes_dagster_k8s_schema(values):
    launcher = helm_instance.instance_config(values)["run_launcher"]
    config = _valid(K8sRunLauncher.config_type(), launcher["config"])
    assert config["load_incluster_config"] is True
    assert config["postgres_password_secret"] == values["global"]["postgresqlSecretName"]


class _RecordedBatchApi:
    """Stands in for the Kubernetes batch API: keeps the Job that the launcher would create."""

    def __init__(self):
        self.jobs: list[dict] = []

    def create_namespaced_job(self, body, namespace, **_):
        manifest = kubernetes.client.ApiClient().sanitize_for_serialization(body)
        self.jobs.append({**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}})


@pytest.fixture(scope="module")
def launched_jobs(values, tmp_path_factory) -> dict[str, dict]:
    """The Kubernetes Job that K8sRunLauncher, configured from the values, creates for each pipeline job."""
    from ceal_pipeline.definitions import defs
    from ceal_pipeline.defs.acquisition.jobs import shard_run_tags

    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(yaml.safe_dump({  # a cluster that is never contacted: the launcher only loads it
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    config = _valid(K8sRunLauncher.config_type(), helm_instance.instance_config(values)["run_launcher"]["config"])
    batch_api = _RecordedBatchApi()
    launcher = K8sRunLauncher(**{**config, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)},
                              k8s_client_batch_api=batch_api)
    image, container_context = helm_instance.code_location_container_context(values)
    origin = RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python", code_pointer=ModuleCodePointer("ceal_pipeline.definitions", "defs"),
        container_image=image, container_context=container_context,
    )
    jobs = {}
    with instance_for_test() as instance:
        launcher.register_instance(instance)
        for name in ("nightly_acquisition", "score_candidate_shards", "round_selection"):
            tags = dict(defs.resolve_job_def(name).tags)
            if name == "score_candidate_shards":  # what candidate_shards_sensor adds on a GPU deployment
                tags.update(shard_run_tags("cuda"))
            run = create_run_for_test(instance, job_name=name, tags=tags,
                                      job_code_origin=JobPythonOrigin(name, origin))
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
            jobs[name] = batch_api.jobs[-1]
    return jobs


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_every_generated_run_job_is_a_valid_kubernetes_manifest(launched_jobs):
    for name, job in launched_jobs.items():
        assert job["kind"] == "Job", name
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_only_shard_runs_ask_for_a_gpu_and_tolerate_the_gpu_nodes(launched_jobs):
    for name, job in launched_jobs.items():
        limits = _container(job).get("resources", {}).get("limits", {})
        tolerations = job["spec"]["template"]["spec"].get("tolerations") or []
        on_gpu = name == "score_candidate_shards"
        assert (limits.get("nvidia.com/gpu") == "1") is on_gpu, name
        assert ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations) is on_gpu
        # The values' default requests for every run pod survive the shard's GPU request.
        assert _container(job)["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}, name
        # Nothing pins every run pod to one node pool, or the shard pods could not reach the GPU nodes.
        assert not job["spec"]["template"]["spec"].get("nodeSelector"), name


def test_every_run_pod_gets_the_projects_configuration_and_data_volume(launched_jobs, values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for name, job in launched_jobs.items():
        container = _container(job)
        assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        assert env["CEAL_HOME"] == "/data/ceal" and env["CEAL_SOURCE_KIND"] == "aimotive", name
        assert {"name": "ceal-data", "mountPath": "/data"} in container["volumeMounts"], name
        assert job["metadata"]["namespace"] == helm_instance.NAMESPACE


def test_the_shard_jobs_k8s_tag_is_what_dagster_k8s_accepts():
    from dagster_k8s.job import get_user_defined_k8s_config

    config = get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(GPU_RUN_K8S_CONFIG)})
    assert config.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_a_value_the_chart_model_does_not_translate_is_refused(values):
    broken = json.loads(json.dumps(values))
    broken["runLauncher"]["config"]["k8sRunLauncher"]["nodeSelector"] = {"pool": "cpu"}
    with pytest.raises(ValueError, match=r"\['nodeSelector'\] are not translated"):
        helm_instance.instance_config(broken)
