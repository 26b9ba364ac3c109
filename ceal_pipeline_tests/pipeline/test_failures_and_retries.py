"""Only failures that can heal are retried: configuration and data errors fail once with the reason,
the sensors stop asking for them and say why, a busy history is waited out, a dead worker's run is
retried; after the cause is fixed a run launched by hand closes the round."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.acquisition import failures
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.failures import permanent_failure_of
from ceal_pipeline.defs.acquisition.round_status import is_exported
from ceal_pipeline.defs.acquisition.sensors import MODEL_TAG, candidate_shards_sensor, round_complete_sensor
from ceal_pipeline.defs.resources import FrameSourceResource

from .conftest import DeterministicModelStore, open_round

POOL = CandidatePoolConfig(shard_size=24, k=4, per_sequence_cap=0)
#: A K larger than any pool: refused when the round opens, so a selection meets it only as an override.
UNMEETABLE = dg.RunConfig(ops={"selected_batch": SelectionConfig(k=400)})


def _evaluate(sensor, instance, resources):
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return sensor(context)


def _as_sensor_launches(instance, resources) -> dict:
    return {MODEL_TAG: resources["model_store"].published_for_round(0).version}


def _score_every_shard(defs, instance, tags):
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        defs.resolve_job_def("score_candidate_shards").execute_in_process(
            instance=instance, partition_key=key, tags=tags, raise_on_error=False)


def test_an_unmeetable_selection_is_not_asked_for_again_and_the_tick_says_why_then_a_fixed_launch_closes_the_round(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    tags = _as_sensor_launches(instance, resources)
    _score_every_shard(defs, instance, tags)
    (request,) = [_evaluate(round_complete_sensor, instance, resources)]
    assert isinstance(request, dg.RunRequest)
    failed = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000", tags={**tags, **request.tags}, run_config=UNMEETABLE,
        raise_on_error=False)
    assert not failed.success
    assert "K=400" in permanent_failure_of(instance, instance.get_run_by_id(failed.run_id))

    skipped = _evaluate(round_complete_sensor, instance, resources)

    assert isinstance(skipped, dg.SkipReason)
    assert "gave up on round_selection for r0000 after it failed with a configuration or data error" in skipped.skip_message
    assert "K=400" in skipped.skip_message and "from the Launchpad" in skipped.skip_message
    # The documented re-run path: fix the cause (here K) and launch the partition by hand.
    fixed = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000", run_config=dg.RunConfig(ops={"selected_batch": SelectionConfig(k=4)}))
    assert fixed.success and is_exported(instance, 0)
    assert "is exported" in _evaluate(round_complete_sensor, instance, resources).skip_message


def test_a_shard_that_failed_permanently_is_given_up_at_once_with_its_reason_in_the_skip_reason(
    defs, instance, resources, monkeypatch
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    tags = _as_sensor_launches(instance, resources)
    scoring = defs.resolve_job_def("score_candidate_shards")
    for key in keys[1:]:
        scoring.execute_in_process(instance=instance, partition_key=key, tags=tags)
    healthy = DeterministicModelStore.score

    def nan_scores(self, model, frames, **kwargs):
        scored = healthy(self, model, frames, **kwargs)
        scored.scores[:] = np.nan
        return scored

    monkeypatch.setattr(DeterministicModelStore, "score", nan_scores)
    result = scoring.execute_in_process(instance=instance, partition_key=keys[0], tags=tags, raise_on_error=False)
    assert not result.success

    tick = _evaluate(candidate_shards_sensor, instance, resources)

    assert not tick.run_requests
    message = tick.skip_reason.skip_message
    assert f"gave up on shards of round 0: {keys[0]}: {keys[0]}: non-finite scores" in message
    assert "materialize those candidate_scores partitions by hand" in message


def test_a_shard_that_failed_for_another_reason_is_asked_for_again_with_a_new_run_key(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    keys = sorted(instance.get_dynamic_partitions("candidate_shards"))
    tags = _as_sensor_launches(instance, resources)
    store = resources["model_store"]
    killed = build_defs({**resources, "model_store": type(store)(model_dir=store.model_dir, scoring_log=store.scoring_log,
                                                                 fail_on_shard_call=1)}, with_validation=False)
    result = killed.resolve_job_def("score_candidate_shards").execute_in_process(
        instance=instance, partition_key=keys[0], tags=tags, raise_on_error=False)
    assert not result.success and permanent_failure_of(instance, instance.get_run_by_id(result.run_id)) is None

    requests = {r.partition_key: r.run_key for r in _evaluate(candidate_shards_sensor, instance, resources).run_requests}

    assert requests[keys[0]].endswith("-attempt1")


def test_a_source_the_synthetic_generator_did_not_create_fails_the_catalog_once_with_the_fix(
    tmp_path, instance, resources
):
    dataset = tmp_path / "aimotive-copy"
    (dataset / "data").mkdir(parents=True)
    (dataset / "LICENSE.txt").write_text("CC BY-NC-SA 4.0\n")
    misconfigured = {**resources, "frame_source": FrameSourceResource(
        kind="synthetic", root=str(dataset), catalog_dir=str(tmp_path / "catalog"))}

    result = open_round(build_defs(misconfigured, with_validation=False), instance, raise_on_error=False)

    assert not result.success
    reason = permanent_failure_of(instance, instance.get_run_by_id(result.run_id))
    assert f"the synthetic source at {dataset} cannot be catalogued" in reason
    assert "ceal init --source aimotive" in reason
    assert sorted(p.name for p in dataset.iterdir()) == ["LICENSE.txt", "data"]
    steps = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert steps == ["frame_catalog"]  # failed once: no step retry


def test_a_locked_history_is_waited_out_inside_the_run(defs, instance, resources, monkeypatch):
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.core.history.connection import HistoryLocked

    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(shard_size=24, k=4)}))
    _score_every_shard(defs, instance, {})
    monkeypatch.setattr(failures, "BUSY_WAIT_S", 0)
    save_selection, calls = AcquisitionHistory.save_selection, []

    def locked_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise HistoryLocked("history.duckdb is open for writing in another process")
        return save_selection(self, *args, **kwargs)

    monkeypatch.setattr(AcquisitionHistory, "save_selection", locked_once)

    closing = defs.resolve_job_def("round_selection").execute_in_process(instance=instance, partition_key="r0000")

    assert closing.success and len(calls) == 2
    assert any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in closing.all_events)


@pytest.mark.parametrize("reason, retried", [("STEP_FAILURE", False), ("RUN_WORKER_RESTART", True),
                                             ("UNEXPECTED_TERMINATION", True)])
def test_the_instance_retries_a_run_whose_worker_died_not_one_that_failed_in_a_step(defs, reason, retried):
    from dagster._core.events import RunFailureReason
    from dagster._core.execution.retries import auto_reexecution_should_retry_run

    settings = yaml.safe_load((Path(__file__).parents[2] / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides={"run_retries": settings["run_retries"]}) as instance:
        run = instance.create_run_for_job(defs.resolve_job_def("score_candidate_shards"),
                                          status=dg.DagsterRunStatus.FAILURE)
        assert auto_reexecution_should_retry_run(instance, run, RunFailureReason(reason)) is retried
