"""The Dagster instance config that the official Dagster Helm chart renders from docker/k8s/values.yaml.

The chart turns its camelCase values into the instance's ``dagster.yaml`` (its
``configmap-instance.yaml`` and the ``helpers/instance/*.tpl`` templates). Helm
is not on this project's machines, so this module states that translation for
the values this project sets, one section per template, and the tests validate
the result with Dagster's own schemas (the instance schema, ``dagster-postgres``
storage, ``dagster-k8s``'s ``K8sRunLauncher``). A value the chart would not read
raises here, so the translation cannot silently skip what the file says.
"""

from __future__ import annotations

from typing import Any

RELEASE = "ceal"
NAMESPACE = "ceal"
PASSWORD_ENV = "DAGSTER_PG_PASSWORD"  # what the chart's pods read from global.postgresqlSecretName

# runLauncher.config.k8sRunLauncher key -> K8sRunLauncher config key (copied as is when set)
_RUN_LAUNCHER_KEYS = {
    "kubeconfigFile": "kubeconfig_file",
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "resources": "resources",
    "schedulerName": "scheduler_name",
    "securityContext": "security_context",
}
_RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}
_RUN_MONITORING_KEYS = {
    "enabled": "enabled",
    "startTimeoutSeconds": "start_timeout_seconds",
    "cancelTimeoutSeconds": "cancel_timeout_seconds",
    "maxResumeRunAttempts": "max_resume_run_attempts",
    "pollIntervalSeconds": "poll_interval_seconds",
    "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
}


def _renamed(values: dict[str, Any], names: dict[str, str], where: str, ignored: tuple[str, ...] = ()) -> dict:
    unknown = sorted(set(values) - set(names) - set(ignored))
    if unknown:
        raise ValueError(f"{where}: {unknown} are not translated by this test's chart model; add them to "
                         "ceal_pipeline_tests/deploy/helm_instance.py after checking the chart's template")
    return {names[key]: value for key, value in values.items() if key in names and value not in (None, [], {})}


def _postgres_storage(values: dict) -> dict:
    pg = values["postgresql"]
    config = {"postgres_db": {
        "username": pg["postgresqlUsername"],
        "password": {"env": PASSWORD_ENV},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    return config


def _run_launcher(values: dict) -> dict:
    launcher = values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise ValueError(f"runLauncher.type is {launcher['type']!r}; this project deploys with K8sRunLauncher")
    k8s = launcher["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": f"{RELEASE}-dagster",
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{RELEASE}-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        **_renamed(k8s, _RUN_LAUNCHER_KEYS, "runLauncher.config.k8sRunLauncher",
                   ignored=("loadInclusterConfig", "jobNamespace", "imagePullPolicy", "envConfigMaps",
                            "envSecrets", "runK8sConfig", "image")),
    }
    for key, target in (("envConfigMaps", "env_config_maps"), ("envSecrets", "env_secrets")):
        names = [entry["name"] for entry in k8s.get(key) or [] if "name" in entry]
        if names:
            config[target] = names
    if k8s.get("runK8sConfig"):
        config["run_k8s_config"] = _renamed(k8s["runK8sConfig"], _RUN_K8S_CONFIG_KEYS,
                                            "runLauncher.config.k8sRunLauncher.runK8sConfig")
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _run_coordinator(daemon: dict) -> dict:
    coordinator = daemon["runCoordinator"]
    if coordinator["type"] != "QueuedRunCoordinator":
        raise ValueError(f"dagsterDaemon.runCoordinator.type is {coordinator['type']!r}, not QueuedRunCoordinator")
    queued = coordinator["config"].get("queuedRunCoordinator") or {}
    section = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    config = _renamed(queued, {"maxConcurrentRuns": "max_concurrent_runs",
                               "tagConcurrencyLimits": "tag_concurrency_limits",
                               "dequeueIntervalSeconds": "dequeue_interval_seconds"},
                      "dagsterDaemon.runCoordinator.config.queuedRunCoordinator")
    return {**section, "config": config} if config else section


def _concurrency(values: dict) -> dict:
    concurrency = values.get("concurrency") or {}
    out = {}
    pools = _renamed(concurrency.get("pools") or {}, {"defaultLimit": "default_limit", "granularity": "granularity",
                                                      "opGranularityRunBuffer": "op_granularity_run_buffer"},
                     "concurrency.pools")
    runs = _renamed(concurrency.get("runs") or {}, {"maxConcurrentRuns": "max_concurrent_runs",
                                                    "tagConcurrencyLimits": "tag_concurrency_limits"},
                    "concurrency.runs")
    if pools:
        out["pools"] = pools
    if runs:
        out["runs"] = runs
    return out


def instance_config(values: dict) -> dict:
    """The ``dagster.yaml`` the chart writes into its ``<release>-dagster-instance`` ConfigMap."""
    storage = _postgres_storage(values)
    daemon = values["dagsterDaemon"]
    config: dict[str, Any] = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_launcher": _run_launcher(values),
        "run_coordinator": _run_coordinator(daemon),
        "telemetry": {"enabled": values.get("telemetry", {}).get("enabled", True)},
    }
    if daemon.get("runMonitoring", {}).get("enabled"):
        config["run_monitoring"] = _renamed(daemon["runMonitoring"], _RUN_MONITORING_KEYS,
                                            "dagsterDaemon.runMonitoring")
    if daemon.get("runRetries", {}).get("enabled"):
        config["run_retries"] = _renamed(daemon["runRetries"], {"enabled": "enabled", "maxRetries": "max_retries"},
                                         "dagsterDaemon.runRetries")
    concurrency = _concurrency(values)
    if concurrency:
        config["concurrency"] = concurrency
    return config


def code_location_container_context(values: dict) -> tuple[str, dict]:
    """``(image, container context)`` that the user deployment hands to its launched runs
    (``includeConfigInLaunchedRuns``): its env and volumes reach every run pod."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    if not deployment.get("includeConfigInLaunchedRuns", {}).get("enabled"):
        raise ValueError("the ceal-pipeline deployment must set includeConfigInLaunchedRuns.enabled, or its "
                         "CEAL_* env and data volume do not reach the run pods")
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    return image, {"k8s": {
        "namespace": NAMESPACE,
        "env": deployment.get("env") or [],
        "volumes": deployment.get("volumes") or [],
        "volume_mounts": deployment.get("volumeMounts") or [],
        "image_pull_policy": deployment["image"]["pullPolicy"],
    }}
