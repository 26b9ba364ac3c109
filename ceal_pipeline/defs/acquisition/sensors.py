"""Sensors that carry an opened round through scoring and selection.

Both look at the latest round partition (:mod:`round_status`): once its pool
is published and until its export is materialized. ``candidate_shards_sensor``
launches one ``score_candidate_shards`` run per shard not yet scored by the
round's detector (and not already queued or running); a shard whose runs failed
``MAX_ATTEMPTS`` times, or whose run failed permanently (a configuration or data
error, :mod:`.failures`), is left for a person, and the tick's skip reason says
so and why. ``round_complete_sensor`` launches ``round_selection`` for the round
once every shard is scored; a failed selection is requested again (a new run
key per attempt) up to ``MAX_ATTEMPTS`` times, and not after a permanent
failure. After fixing the cause, launch the partition by hand (Launchpad, or
re-execute the failed run): runs launched by hand do not count as the sensor's
attempts. Neither sensor opens the DuckDB history.
"""


import dagster as dg

from ceal_pipeline.defs.acquisition.failures import permanent_failure_of
from ceal_pipeline.defs.acquisition.jobs import round_selection, score_candidate_shards, shard_run_tags
from ceal_pipeline.defs.acquisition.partitions import candidate_shards, round_partition_key
from ceal_pipeline.defs.acquisition.round_status import IN_FLIGHT, is_exported, latest_round, runs_of
from ceal_pipeline.core.history.shards import ExchangeFileError, PublishedPool
from ceal_pipeline.defs.acquisition.shard_scoring import unscored_shard_keys
from ceal_pipeline.defs.resources import AcquisitionHistoryResource, ModelStoreResource

MAX_ATTEMPTS = 3
MODEL_TAG = "ceal/model_version"


def open_round(instance: dg.DagsterInstance, history: AcquisitionHistoryResource):
    """``(published pool, unscored shard keys)`` of the open round, or a SkipReason saying why there is none."""
    round_index = latest_round(instance)
    if round_index is None:
        return dg.SkipReason("no acquisition round yet: nightly_acquisition opens round r0000")
    if is_exported(instance, round_index):
        return dg.SkipReason(f"round {round_index} is exported; the next nightly_acquisition opens the next round")
    exchange = history.exchange()
    try:
        pool = exchange.published_pool(round_index)
        if pool is None:
            return dg.SkipReason(f"round {round_index}: its candidate pool is not drawn yet (nightly_acquisition)")
        return pool, unscored_shard_keys(exchange, pool)
    except ExchangeFileError as exc:
        return dg.SkipReason(f"round {round_index}: {exc}")


def _failures(instance: dg.DagsterInstance, job_name: str, key: str, version: str) -> tuple[int, str | None]:
    """``(failed attempts, permanent failure reason or None)`` of this sensor's runs for ``key``
    with the round's detector ``version`` (runs launched by hand carry no version tag)."""
    failed = [run for run in runs_of(instance, job_name, key, [dg.DagsterRunStatus.FAILURE])
              if run.tags.get(MODEL_TAG) == version]
    for run in failed:  # newest first
        reason = permanent_failure_of(instance, run)
        if reason is not None:
            return len(failed), reason
    return len(failed), None


@dg.sensor(
    job=score_candidate_shards,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch one gpu-pool scoring run per unscored shard of the open round.",
)
def candidate_shards_sensor(
    context: dg.SensorEvaluationContext, history: AcquisitionHistoryResource, model_store: ModelStoreResource
):
    state = open_round(context.instance, history)
    if isinstance(state, dg.SkipReason):
        return state
    pool, missing = state
    assert isinstance(pool, PublishedPool)
    if not missing:
        return dg.SkipReason(f"every shard of round {pool.round_index} is scored by {pool.model_version}")
    registered = set(context.instance.get_dynamic_partitions(candidate_shards.name))
    requests, given_up, in_flight, reasons = [], [], [], {}
    for key in missing:
        # Any run of the shard in flight counts, also one launched by hand from the UI.
        if runs_of(context.instance, score_candidate_shards.name, key, IN_FLIGHT):
            in_flight.append(key)
            continue
        failures, permanent = _failures(context.instance, score_candidate_shards.name, key, pool.model_version)
        if permanent is not None or failures >= MAX_ATTEMPTS:
            given_up.append(key)
            reasons[key] = permanent or f"{MAX_ATTEMPTS} failed runs"
            continue
        requests.append(
            dg.RunRequest(run_key=f"{key}-{pool.model_version}-attempt{failures}", partition_key=key,
                          tags={MODEL_TAG: pool.model_version, **shard_run_tags(model_store.device)})
        )
    unregistered = [key for key in missing if key not in registered]
    partition_requests = [candidate_shards.build_add_request(unregistered)] if unregistered else []
    gave_up = (
        f"gave up on shards of round {pool.round_index}: "
        + "; ".join(f"{key}: {reasons[key]}" for key in given_up[:5]) + ("; ..." if len(given_up) > 5 else "")
        + ". Fix the cause, then materialize those candidate_scores partitions by hand"
    )
    if given_up and not requests:
        return dg.SensorResult(skip_reason=gave_up, dynamic_partitions_requests=partition_requests)
    if given_up:
        context.log.warning(gave_up)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"round {pool.round_index}: {len(in_flight)} shard runs in flight "
            f"({', '.join(in_flight[:5])}{', ...' if len(in_flight) > 5 else ''}), nothing new to launch",
            dynamic_partitions_requests=partition_requests,
        )
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests)


@dg.sensor(
    job=round_selection,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch round_selection (merge, prune, select, export) once every shard of the open round is scored.",
)
def round_complete_sensor(context: dg.SensorEvaluationContext, history: AcquisitionHistoryResource):
    state = open_round(context.instance, history)
    if isinstance(state, dg.SkipReason):
        return state
    pool, missing = state
    if missing:
        return dg.SkipReason(f"round {pool.round_index}: {len(missing)} shards still to score")
    key = round_partition_key(pool.round_index)
    if runs_of(context.instance, round_selection.name, key, IN_FLIGHT):
        return dg.SkipReason(f"round_selection for {key} is in flight")
    failures, permanent = _failures(context.instance, round_selection.name, key, pool.model_version)
    if permanent is not None or failures >= MAX_ATTEMPTS:
        why = f"it failed with a configuration or data error: {permanent}" if permanent else (
            f"{MAX_ATTEMPTS} failed runs: read their failures")
        return dg.SkipReason(
            f"gave up on round_selection for {key} after {why}. Fix the cause, then launch round_selection for "
            f"partition {key} from the Launchpad (or re-execute the failed run)"
        )
    # One run key per attempt: a failed selection is asked for again, a running one is not.
    return dg.RunRequest(
        run_key=f"round-selection-{key}-{pool.model_version}-attempt{failures}",
        partition_key=key,
        tags={MODEL_TAG: pool.model_version},
    )


acquisition_sensors = [candidate_shards_sensor, round_complete_sensor]
