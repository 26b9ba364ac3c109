"""The nightly schedule and the sensors that carry a round through scoring and selection."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.schedules import nightly_schedule
from ceal_pipeline.defs.acquisition.sensors import candidate_shards_sensor, round_complete_sensor

from .conftest import open_round

#: The schedule as build_defs makes it on the default cron (no CEAL_NIGHTLY_CRON).
nightly_acquisition_schedule = nightly_schedule()

POOL = CandidatePoolConfig(shard_size=24, k=4, per_sequence_cap=2)


def _evaluate(sensor, instance, resources):
    # As a context manager: the resources it builds are torn down with it.
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return sensor(context)


def _requests(result) -> list[dg.RunRequest]:
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or [])
    return [result] if isinstance(result, dg.RunRequest) else []


def _tick(defs, instance, resources):
    with dg.build_schedule_context(
        instance=instance, resources=resources, repository_def=defs.get_repository_def(),
        scheduled_execution_time=datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc),
    ) as context:
        return nightly_acquisition_schedule.evaluate_tick(context)


def test_the_nightly_schedule_adds_round_zero_once_at_two_utc(defs, instance, resources):
    assert nightly_acquisition_schedule.cron_schedule == "0 2 * * *"
    assert nightly_acquisition_schedule.execution_timezone == "UTC"
    assert nightly_acquisition_schedule.job_name == "nightly_acquisition"
    (request,) = _tick(defs, instance, resources).run_requests
    assert request.partition_key == "r0000"
    assert instance.get_dynamic_partitions("acquisition_rounds") == ["r0000"]
    # The opening run died before its pool: the next tick resumes r0000 and adds nothing.
    (again,) = _tick(defs, instance, resources).run_requests
    assert again.partition_key == "r0000" and instance.get_dynamic_partitions("acquisition_rounds") == ["r0000"]


def test_the_schedules_runs_take_the_round_parameters_of_the_project_configuration(defs, instance, resources):
    # no run config of its own: the candidate_pool config's defaults are ceal.yaml's round section
    (request,) = _tick(defs, instance, resources).run_requests
    assert not request.run_config and request.tags["ceal/opened_by"] == "schedule"


def test_the_schedule_leaves_an_open_round_to_the_sensors_and_opens_the_next_after_its_export(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    tick = _tick(defs, instance, resources)
    assert not tick.run_requests and "sensors are carrying it" in tick.skip_message
    instance.report_runless_asset_event(dg.AssetMaterialization("vendor_export", partition="r0000"))
    (request,) = _tick(defs, instance, resources).run_requests
    assert request.partition_key == "r0001"
    assert instance.get_dynamic_partitions("acquisition_rounds") == ["r0000", "r0001"]


def test_sensors_wait_for_a_pool_then_fan_out_shards_then_start_selection_once(defs, instance, resources):
    assert isinstance(_evaluate(candidate_shards_sensor, instance, resources), dg.SkipReason)
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)

    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    requested = _requests(_evaluate(candidate_shards_sensor, instance, resources))
    assert sorted(r.partition_key for r in requested) == keys and len(keys) >= 2
    assert all(r.partition_key.startswith("r0000-") for r in requested)
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)

    scoring = defs.resolve_job_def("score_candidate_shards")
    scoring.execute_in_process(instance=instance, partition_key=keys[0])
    assert [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))] == keys[1:]
    for key in keys[1:]:
        scoring.execute_in_process(instance=instance, partition_key=key)

    assert _requests(_evaluate(candidate_shards_sensor, instance, resources)) == []
    (selection,) = _requests(_evaluate(round_complete_sensor, instance, resources))
    assert selection.run_key and selection.partition_key == "r0000"
    assert selection.run_key == _requests(_evaluate(round_complete_sensor, instance, resources))[0].run_key

    defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, tags=selection.tags, partition_key=selection.partition_key,
        run_config=dg.RunConfig(ops={"selected_batch": SelectionConfig(k=4)}),
    )
    assert isinstance(_evaluate(round_complete_sensor, instance, resources), dg.SkipReason)  # round closed


def test_the_shard_sensor_does_not_request_a_shard_whose_run_is_in_flight(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    launched = instance.create_run_for_job(  # launched by hand, created but not started yet: in flight
        defs.resolve_job_def("score_candidate_shards"), tags={"dagster/partition": keys[0]}
    )
    assert launched.status == dg.DagsterRunStatus.NOT_STARTED

    requested = [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))]

    assert requested == keys[1:]


def test_the_shard_sensor_gives_up_on_a_shard_that_failed_three_times(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    version = resources["model_store"].published_for_round(0).version
    for _ in range(3):
        instance.create_run_for_job(
            defs.resolve_job_def("score_candidate_shards"),
            tags={"dagster/partition": keys[0], "ceal/model_version": version},
            status=dg.DagsterRunStatus.FAILURE,
        )

    requested = [r.partition_key for r in _requests(_evaluate(candidate_shards_sensor, instance, resources))]

    assert requested == keys[1:]  # left for a person to look at, the others go on


def test_a_failed_selection_is_requested_again_with_a_new_run_key_then_given_up_with_a_reason(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    scoring = defs.resolve_job_def("score_candidate_shards")
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        scoring.execute_in_process(instance=instance, partition_key=key)
    version = resources["model_store"].published_for_round(0).version
    run_keys = []
    for _ in range(3):
        (request,) = _requests(_evaluate(round_complete_sensor, instance, resources))
        run_keys.append(request.run_key)
        instance.create_run_for_job(
            defs.resolve_job_def("round_selection"), status=dg.DagsterRunStatus.FAILURE,
            tags={"dagster/partition": "r0000", "ceal/model_version": version},
        )
    assert len(set(run_keys)) == 3

    skipped = _evaluate(round_complete_sensor, instance, resources)

    assert isinstance(skipped, dg.SkipReason) and "gave up on round_selection for r0000" in skipped.skip_message
