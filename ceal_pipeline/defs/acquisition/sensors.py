"""Sensors that carry an opened round through scoring and selection.

``candidate_shards_sensor`` launches one ``score_candidate_shards`` run per shard
of the open round that is not yet scored by the round's detector (and not
already queued or running); a shard whose runs failed ``MAX_SHARD_ATTEMPTS``
times is left for a person to look at. ``round_complete_sensor`` launches
``round_selection`` once, when every shard is scored. Both read only files
(pool manifests, Parquet shards, the outbox), never the DuckDB history, so they
never contend with its single writer.
"""


import dagster as dg

from ceal_pipeline.defs.acquisition.config import ROUND_TAG
from ceal_pipeline.defs.acquisition.jobs import round_selection, score_candidate_shards
from ceal_pipeline.defs.acquisition.partitions import candidate_shards
from ceal_pipeline.defs.acquisition.rounds import is_round_closed
from ceal_pipeline.defs.acquisition.shard_scoring import missing_shard_keys
from ceal_pipeline.defs.resources import AcquisitionHistoryResource, ModelStoreResource, VendorExporterResource

MAX_SHARD_ATTEMPTS = 3
MODEL_TAG = "ceal/model_version"
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def open_round(history: AcquisitionHistoryResource, model_store: ModelStoreResource, outbox: str):
    """``(round, detector version, unscored shard keys)`` of the open round, or a SkipReason
    saying why there is none."""
    rounds = history.shards().rounds()
    if not rounds:
        return dg.SkipReason("no candidate pool has been drawn yet (run nightly_acquisition)")
    round_index = rounds[-1]
    if is_round_closed(outbox, round_index):
        return dg.SkipReason(f"round {round_index} is exported; waiting for the next nightly_acquisition")
    published = model_store.published_for_round(round_index)
    if published is None:
        return dg.SkipReason(f"round {round_index} has a pool but no published detector yet")
    return round_index, published.version, missing_shard_keys(history, model_store, round_index)


def _runs(instance: dg.DagsterInstance, job_name: str, tags: dict, statuses=None) -> list:
    return instance.get_runs(filters=dg.RunsFilter(job_name=job_name, tags=tags, statuses=statuses))


@dg.sensor(
    job=score_candidate_shards,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch one gpu-pool scoring run per unscored shard of the open round.",
)
def candidate_shards_sensor(
    context: dg.SensorEvaluationContext,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    exporter: VendorExporterResource,
):
    state = open_round(history, model_store, exporter.outbox)
    if isinstance(state, dg.SkipReason):
        return state
    round_index, version, missing = state
    if not missing:
        return dg.SkipReason(f"every shard of round {round_index} is scored by {version}")
    registered = set(context.instance.get_dynamic_partitions(candidate_shards.name))
    requests, given_up = [], []
    for key in missing:
        # Any run of the shard in flight counts, also one launched by hand from the UI.
        if _runs(context.instance, score_candidate_shards.name, {"dagster/partition": key}, _IN_FLIGHT):
            continue
        tags = {"dagster/partition": key, MODEL_TAG: version}
        if len(_runs(context.instance, score_candidate_shards.name, tags, [dg.DagsterRunStatus.FAILURE])) >= MAX_SHARD_ATTEMPTS:
            given_up.append(key)
            continue
        requests.append(dg.RunRequest(partition_key=key, tags={ROUND_TAG: str(round_index), MODEL_TAG: version}))
    if given_up:
        context.log.warning(
            f"shards {given_up[:10]} failed {MAX_SHARD_ATTEMPTS} times; fix the cause and materialize them by hand"
        )
    unregistered = [key for key in missing if key not in registered]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[candidate_shards.build_add_request(unregistered)] if unregistered else [],
    )


@dg.sensor(
    job=round_selection,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch round_selection (merge, prune, select, export) once every shard of the open round is scored.",
)
def round_complete_sensor(
    context: dg.SensorEvaluationContext,
    history: AcquisitionHistoryResource,
    model_store: ModelStoreResource,
    exporter: VendorExporterResource,
):
    state = open_round(history, model_store, exporter.outbox)
    if isinstance(state, dg.SkipReason):
        return state
    round_index, version, missing = state
    if missing:
        return dg.SkipReason(f"round {round_index}: {len(missing)} shards still to score")
    return dg.RunRequest(
        # One selection run per (round, detector): the run key makes the sensor idempotent.
        run_key=f"round-selection-r{round_index:04d}-{version}",
        tags={ROUND_TAG: str(round_index), MODEL_TAG: version},
    )


acquisition_sensors = [candidate_shards_sensor, round_complete_sensor]
