"""The nightly schedule and the sensors that carry a round through scoring and selection."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from ceal_pipeline.defs.acquisition.config import ROUND_TAG, CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.schedules import nightly_acquisition_schedule
from ceal_pipeline.defs.acquisition.sensors import candidate_shards_sensor, round_complete_sensor

POOL = CandidatePoolConfig(shard_size=24)


def _evaluate(sensor, instance, resources):
    context = dg.build_sensor_context(instance=instance, resources=resources)
    return sensor(context)


def _requests(result) -> list[dg.RunRequest]:
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or [])
    return [result] if isinstance(result, dg.RunRequest) else []


def test_the_nightly_schedule_opens_a_round_at_two_utc():
    assert nightly_acquisition_schedule.cron_schedule == "0 2 * * *"
    assert nightly_acquisition_schedule.execution_timezone == "UTC"
    assert nightly_acquisition_schedule.job_name == "nightly_acquisition"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc))
    request = nightly_acquisition_schedule.evaluate_tick(context).run_requests[0]
    assert ROUND_TAG not in request.tags  # the round comes from the history, not the clock


def test_sensors_wait_for_a_pool_then_fan_out_shards_then_start_selection_once(defs, instance, resources):
    assert isinstance(_evaluate(candidate_shards_sensor, instance, resources), dg.SkipReason)
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)

    defs.resolve_job_def("nightly_acquisition").execute_in_process(
        instance=instance, run_config=dg.RunConfig(ops={"candidate_pool": POOL})
    )
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    requested = _requests(_evaluate(candidate_shards_sensor, instance, resources))
    assert sorted(r.partition_key for r in requested) == keys and len(keys) >= 2
    assert all(r.tags[ROUND_TAG] == "0" for r in requested)
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)

    scoring = defs.resolve_job_def("score_candidate_shards")
    scoring.execute_in_process(instance=instance, partition_key=keys[0])
    assert [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))] == keys[1:]
    for key in keys[1:]:
        scoring.execute_in_process(instance=instance, partition_key=key)

    assert _requests(_evaluate(candidate_shards_sensor, instance, resources)) == []
    (selection,) = _requests(_evaluate(round_complete_sensor, instance, resources))
    assert selection.run_key and selection.tags[ROUND_TAG] == "0"
    assert selection.run_key == _requests(_evaluate(round_complete_sensor, instance, resources))[0].run_key

    defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, tags=selection.tags, run_config=dg.RunConfig(ops={"selected_batch": SelectionConfig(k=4)})
    )
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)  # round closed


def test_the_shard_sensor_does_not_request_a_shard_whose_run_is_in_flight(defs, instance, resources):
    defs.resolve_job_def("nightly_acquisition").execute_in_process(
        instance=instance, run_config=dg.RunConfig(ops={"candidate_pool": POOL})
    )
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    launched = instance.create_run_for_job(  # launched by hand, created but not started yet: in flight
        defs.resolve_job_def("score_candidate_shards"), tags={"dagster/partition": keys[0]}
    )
    assert launched.status == dg.DagsterRunStatus.NOT_STARTED

    requested = [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))]

    assert requested == keys[1:]


def test_the_shard_sensor_gives_up_on_a_shard_that_failed_three_times(defs, instance, resources):
    defs.resolve_job_def("nightly_acquisition").execute_in_process(
        instance=instance, run_config=dg.RunConfig(ops={"candidate_pool": POOL})
    )
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    version = resources["model_store"].current().version
    for _ in range(3):
        instance.create_run_for_job(
            defs.resolve_job_def("score_candidate_shards"),
            tags={"dagster/partition": keys[0], "ceal/model_version": version},
            status=dg.DagsterRunStatus.FAILURE,
        )

    requested = [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))]

    assert requested == keys[1:]  # left for a person to look at, the others go on
