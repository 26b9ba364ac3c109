"""Re-running and resuming rounds: same selection, one export, only missing shards rescored."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.failures import permanent_failure_of
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.export import list_exports

from .conftest import open_round

K = 5
CONFIGS = {
    "candidate_pool": CandidatePoolConfig(shard_size=16, k=K, per_sequence_cap=3),
    "selected_batch": SelectionConfig(k=K, per_sequence_cap=3),
}


def _scored_batches(resources) -> list[list[str]]:
    """Frame ids of every scoring call the stand-in detector received, in order."""
    log = resources["model_store"].scoring_log
    with open(log) as handle:
        return [json.loads(line) for line in handle]


def test_rerunning_a_closed_round_gives_the_same_selection_and_no_second_export(defs, instance, resources):
    report = run_acquisition_round(defs, instance, CONFIGS)
    history = resources["history"].open()
    selection = list(history.selection(0).frame_ids)
    drop = list_exports(resources["exporter"].outbox)
    stamps = {p.name: p.stat().st_mtime_ns for p in drop[0].iterdir()}

    opening = open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CONFIGS["candidate_pool"]}))
    closing = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000",
        run_config=dg.RunConfig(ops={"selected_batch": CONFIGS["selected_batch"]}),
    )

    pool = opening.asset_materializations_for_node("candidate_pool")[0].metadata
    assert pool["reused_pool"].value is True and pool["round"].value == 0
    assert opening.asset_materializations_for_node("detector")[0].metadata["reused_checkpoint"].value is True
    export = closing.asset_materializations_for_node("vendor_export")[0].metadata
    assert export["new_export"].value is False
    assert list(history.selection(0).frame_ids) == selection
    assert list_exports(resources["exporter"].outbox) == drop
    assert {p.name: p.stat().st_mtime_ns for p in drop[0].iterdir()} == stamps
    assert history.export(0)["n_frames"] == K
    assert sum(len(batch) for batch in _scored_batches(resources)) == report.pool_frames  # nothing rescored


def test_a_round_killed_during_scoring_resumes_with_only_the_missing_shards(instance, resources):
    store = resources["model_store"]
    killed = {
        **resources,
        "model_store": type(store)(model_dir=store.model_dir, scoring_log=store.scoring_log, fail_on_shard_call=2),
    }
    with pytest.raises(RuntimeError, match="injected fault"):
        run_acquisition_round(build_defs(killed, with_validation=False), instance, CONFIGS)
    exchange = resources["history"].exchange()
    pool = exchange.published_pool(0)
    assert exchange.unscored_shards(pool) == list(range(1, pool.n_shards))
    assert list_exports(resources["exporter"].outbox) == []
    first_shard = set(exchange.shard_frames(0, 0))

    report = run_acquisition_round(build_defs(resources, with_validation=False), instance, CONFIGS)

    assert report.round_index == 0  # the killed round resumes: no new round is opened
    assert report.shards_scored == [f"r0000-s{s:03d}" for s in range(1, pool.n_shards)]
    scored = [frame for batch in _scored_batches(resources) for frame in batch]
    # shard 0 was scored once, before the kill; the killed shard again; the rest once
    assert sum(frame in first_shard for frame in scored) == len(first_shard)
    history = resources["history"].open()
    assert len(history.round_scores(0).frame_ids) == pool.frames  # no score lost
    record = history.round_records()[0]
    assert (record.stage, record.shards_ingested) == ("exported", tuple(range(pool.n_shards)))
    assert report.new_export and len(list_exports(resources["exporter"].outbox)) == 1


def test_selection_refuses_to_start_while_a_shard_is_unscored(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CONFIGS["candidate_pool"]}))
    defs.resolve_job_def("score_candidate_shards").execute_in_process(instance=instance, partition_key="r0000-s000")

    result = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000", raise_on_error=False
    )

    assert not result.success
    failure = result.failure_data_for_node("merged_scores").error.message
    assert "r0000-s001" in failure and "not scored" in failure
    assert len(resources["history"].open().selection(0)) == 0
    assert list_exports(resources["exporter"].outbox) == []


def test_materializing_a_shard_by_hand_scores_it_once_and_a_second_time_skips_it(defs, instance, resources):
    from ceal_pipeline.defs.acquisition.assets import acquisition_assets, opening_assets

    instance.add_dynamic_partitions("acquisition_rounds", ["r0000"])
    dg.materialize(
        acquisition_assets, selection=opening_assets, instance=instance, resources=resources, partition_key="r0000",
        run_config=dg.RunConfig(ops={"candidate_pool": CONFIGS["candidate_pool"]}),
    )
    key = sorted(instance.get_dynamic_partitions("candidate_shards"))[0]

    first = dg.materialize(
        acquisition_assets, selection=["candidate_scores"], partition_key=key, instance=instance, resources=resources
    )
    again = dg.materialize(
        acquisition_assets, selection=["candidate_scores"], partition_key=key, instance=instance, resources=resources
    )

    assert first.asset_materializations_for_node("candidate_scores")[0].metadata["skipped"].value is False
    assert again.asset_materializations_for_node("candidate_scores")[0].metadata["skipped"].value is True
    assert len(_scored_batches(resources)) == 1


def test_k_and_the_sequence_cap_set_when_the_round_opens_are_used_by_a_selection_launched_without_config(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(shard_size=64, k=3,
                                                                                       per_sequence_cap=1)}))
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        defs.resolve_job_def("score_candidate_shards").execute_in_process(instance=instance, partition_key=key)

    # As the round_complete_sensor launches it: no run config at all.
    closing = defs.resolve_job_def("round_selection").execute_in_process(instance=instance, partition_key="r0000")

    selected = closing.asset_materializations_for_node("selected_batch")[0].metadata
    assert selected["k"].value == 3 and selected["per_sequence_cap"].value == 1
    assert selected["sequences"].value == 3  # one frame from each of three sequences


def test_a_k_the_drawn_pool_cannot_meet_fails_the_opening_once_before_the_round_is_recorded(
    defs, instance, resources
):
    # 4 sequences in the pool, at most 2 frames of each: K = 40 cannot be met, whatever the scores.
    opening = open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(
        shard_size=64, k=40, per_sequence_cap=2)}), raise_on_error=False)

    assert not opening.success
    error = opening.failure_data_for_node("candidate_pool").error
    assert "Failure: round 0: K=40 but only 8 frames of its candidate pool can be bought" in error.message
    assert "at most 2 per sequence" in error.message and "raise per_sequence_cap" in error.message
    assert not resources["history"].open().has_candidate_pool(0) and resources["history"].open().rounds() == []
    assert permanent_failure_of(instance, instance.get_run_by_id(opening.run_id))  # not retried


def test_a_selection_that_cannot_be_met_fails_once_with_the_reason_and_no_retry(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(shard_size=64, k=3,
                                                                                       per_sequence_cap=2)}))
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        defs.resolve_job_def("score_candidate_shards").execute_in_process(instance=instance, partition_key=key)

    closing = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000", raise_on_error=False,
        run_config=dg.RunConfig(ops={"selected_batch": SelectionConfig(k=40)}),
    )

    assert not closing.success
    error = closing.failure_data_for_node("selected_batch").error
    # The same sentence as when the round opens, for the candidates that are left.
    assert "Failure: round 0: K=40 but only 8 freshly scored selectable candidates can be bought" in error.message
    assert "lower k" in error.message
    assert list_exports(resources["exporter"].outbox) == []
