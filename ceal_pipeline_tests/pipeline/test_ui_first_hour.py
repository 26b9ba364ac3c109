"""What a person in the Dagster UI sees in the first hour: a round opened with one launch, the
Launchpad's selection overrides, the parameters a round was opened with, how the labeled set
grew, why there is no mAP, and a selection the scores did not decide."""

from __future__ import annotations

import dagster as dg
import numpy as np
from dagster._core.remote_representation.job_index import JobIndex
from dagster._core.snap import JobSnap
from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap

from ceal_pipeline.core.parameter_drift import differing_parameters
from ceal_pipeline.core.round_feasibility import k_shortfall
from ceal_pipeline.core.selection_ties import selection_ties
from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.metadata_notes import map_val_value
from ceal_pipeline.defs.acquisition.round_opener import ROUND_TAG, round_opened_sensor
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.cli.demo_vendor import simulate_vendor
from ceal_pipeline.export.label_ingest import ingest_inbox

from .conftest import DeterministicModelStore, open_round

POOL = CandidatePoolConfig(shard_size=32, k=4, per_sequence_cap=2)
CONFIGS = {"candidate_pool": POOL}


def _click_open_next_round(defs, instance):
    result = defs.resolve_job_def("open_next_round").execute_in_process(instance=instance)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    context = dg.build_run_status_sensor_context(
        sensor_name=round_opened_sensor.name, dagster_instance=instance, dagster_run=run,
        dagster_event=result.get_run_success_event(),
    )
    return run, round_opened_sensor(context)


def test_one_launch_of_open_next_round_adds_the_next_round_and_the_sensor_opens_it(defs, instance):
    run, request = _click_open_next_round(defs, instance)
    assert instance.get_dynamic_partitions("acquisition_rounds") == ["r0000"] and run.tags[ROUND_TAG] == "r0000"
    assert isinstance(request, dg.RunRequest) and request.partition_key == "r0000"
    assert request.tags["ceal/opened_by"] == "ui" and not request.run_config  # ceal.yaml's parameters
    # Clicked again before r0000's opening ran: it resumes r0000, adds nothing.
    _, again = _click_open_next_round(defs, instance)
    assert again.partition_key == "r0000" and instance.get_dynamic_partitions("acquisition_rounds") == ["r0000"]


def test_open_next_round_leaves_an_open_round_to_the_sensors_and_says_so(defs, instance):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    run, skipped = _click_open_next_round(defs, instance)
    assert ROUND_TAG not in run.tags and isinstance(skipped, dg.SkipReason)
    assert instance.get_dynamic_partitions("acquisition_rounds") == ["r0000"]
    logged = [e.user_message for e in instance.all_logs(run.run_id) if e.user_message]
    assert any("no round opened: round 0 is open: its candidate pool is drawn" in m for m in logged)


def test_the_launchpad_scaffolds_selected_batch_k_and_cap_so_a_rerun_can_change_them(defs):
    snap = JobSnap.from_job_def(defs.resolve_job_def("round_selection"))
    schema = snap.config_schema_snapshot
    root = schema.get_config_snap(JobIndex(snap, None).get_mode_def_snap("default").root_config_key)
    scaffold = default_values_yaml_from_type_snap(schema, root)  # what the Launchpad pre-fills
    assert "selected_batch:\n    config:\n      k: 0\n      per_sequence_cap: -1\n" in scaffold


def test_a_selection_launched_with_the_scaffold_as_is_uses_the_rounds_k_and_cap(defs, instance):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        defs.resolve_job_def("score_candidate_shards").execute_in_process(instance=instance, partition_key=key)
    closing = defs.resolve_job_def("round_selection").execute_in_process(
        instance=instance, partition_key="r0000", run_config=dg.RunConfig(ops={"selected_batch": SelectionConfig()}))
    selected = closing.asset_materializations_for_node("selected_batch")[0].metadata
    assert (selected["k"].value, selected["per_sequence_cap"].value) == (4, 2)


def test_the_opening_shows_the_recorded_parameters_and_which_differ_from_ceal_yaml(defs, instance, resources):
    result = open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": POOL}))
    metadata = result.asset_materializations_for_node("candidate_pool")[0].metadata
    configured = resources["run_defaults"].round  # the deployment's ceal.yaml round section
    assert metadata["round_parameters"].value["k"] == 4
    assert metadata["differs_from_ceal_yaml"].value == {
        "shard_size": {"recorded": 32, "ceal.yaml": configured.shard_size},
        "k": {"recorded": 4, "ceal.yaml": configured.k},
    } | ({} if configured.per_sequence_cap == 2 else
         {"per_sequence_cap": {"recorded": 2, "ceal.yaml": configured.per_sequence_cap}})
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    assert any("differ from ceal.yaml:" in m and "shard_size=32" in m and "k=4" in m
               and "Launchpad keeps edited values" in m for m in logged)


def test_parameters_equal_to_ceal_yaml_are_not_reported():
    configured = {"k": 4, "temperature": 0.1, "prior": "optimistic", "prune_floor": None}
    assert differing_parameters({**configured, "seed": 7, "unlabeled_frames": 64}, configured) == {}
    assert differing_parameters({**configured, "temperature": 0.7}, configured) == {
        "temperature": {"recorded": 0.7, "ceal.yaml": 0.1}}


def test_labels_added_counts_what_the_labeled_set_grew_by_also_when_ingested_by_the_cli(defs, instance, resources):
    first = run_acquisition_round(defs, instance, CONFIGS)
    simulate_vendor(resources["exporter"].outbox, resources["exporter"].inbox,
                    resources["frame_source"].catalog().records)
    ingest_inbox(resources["history"].open(), resources["exporter"].inbox)  # as `ceal labels ingest` does
    instance.add_dynamic_partitions("acquisition_rounds", ["r0001"])

    result = defs.resolve_job_def("nightly_acquisition").execute_in_process(
        instance=instance, partition_key="r0001", asset_selection=[dg.AssetKey("labeled_set")])

    metadata = {k: v.value for k, v in result.asset_materializations_for_node("labeled_set")[0].metadata.items()}
    assert metadata["labeled_frames_last_round"] == first.labeled_frames
    assert metadata["labeled_frames"] == first.labeled_frames + POOL.k and metadata["labels_added"] == POOL.k
    assert metadata["ingested_by_this_run"] == {}  # the CLI took them in; this run found nothing new


def test_an_unmeasured_map_says_why_instead_of_an_empty_cell():
    assert map_val_value(0.25, eval_frames=40) == 0.25
    assert "no annotated val-split frames" in map_val_value(float("nan"), eval_frames=0)
    assert "max_eval_frames is 0" in map_val_value(float("nan"), eval_frames=0, max_eval_frames=0)


def test_the_opening_and_the_selection_refuse_an_unmeetable_k_in_one_wording():
    opening = k_shortfall(2, 9, ["a"] * 5 + ["b"] * 5, per_sequence_cap=3, candidates="frames of its candidate pool")
    selection = k_shortfall(2, 9, ["a"] * 5 + ["b"] * 5, per_sequence_cap=3, candidates="selectable candidates")
    assert opening == ("round 2: K=9 but only 6 frames of its candidate pool can be bought (10 frames from 2 sequences, "
                       "at most 3 per sequence); lower k, draw a larger candidate pool (pool_fraction / pool_count) "
                       "or raise per_sequence_cap (0 = no cap)")
    assert selection == opening.replace("frames of its candidate pool", "selectable candidates")
    assert k_shortfall(2, 6, ["a"] * 5 + ["b"] * 5, per_sequence_cap=3) is None
    assert "only 4 candidates can be bought;" in k_shortfall(0, 5, ["a"] * 4)


def test_ties_are_found_where_a_left_out_candidate_scores_like_a_bought_frame():
    assert not selection_ties([3.0, 2.0, 1.0], [0.5, 0.2]).decided_by_ties
    boundary = selection_ties([3.0, 2.0, 1.0], [1.0, 0.2])
    assert boundary.decided_by_ties and (boundary.tied_with_left_out, boundary.left_out_tied) == (1, 1)
    floor = selection_ties([-25.5] * 3, [])
    assert floor.decided_by_ties and floor.distinct_selected_scores == 1  # indistinguishable among themselves


class _BlindModelStore(DeterministicModelStore):
    """A detector that finds nothing yet: every frame gets the same (empty-frame floor) score."""

    def score(self, model, frames, **kwargs):
        scored = super().score(model, frames, **kwargs)
        scored.scores[:] = -25.5
        return scored


def test_a_round_decided_by_ties_passes_its_blocking_checks_but_warns_and_names_the_tie_break(
    instance, resources
):
    blind = {**resources, "model_store": _BlindModelStore(model_dir=resources["model_store"].model_dir)}
    run_acquisition_round(build_defs(blind, with_validation=False), instance, CONFIGS)

    def evaluation(name):
        key = dg.AssetCheckKey(dg.AssetKey("selected_batch"), name)
        return instance.get_latest_asset_check_evaluation_record(key).event.asset_check_evaluation

    assert evaluation("selection_is_k_fresh_unlabeled_unpruned_unique").passed
    warning = evaluation("selection_not_decided_by_ties")
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    metadata = {k: v.value for k, v in warning.metadata.items()}
    # It names the tie-break the selection used (frame id, or diversity where the policy breaks ties by it),
    # with the selection's own per-pick decided_by.
    selected = instance.fetch_materializations(dg.AssetKey("selected_batch"), limit=1).records[0]
    decided = selected.asset_materialization.metadata["decided_by"].value
    assert decided in ("tie_break_frame_id", "diversity")
    assert metadata["decided_by"].startswith("ties: frame id, ascending" if decided == "tie_break_frame_id"
                                             else "ties: diversity")
    assert f"decided_by per pick: {{'{decided}': {POOL.k}}}" in metadata["decided_by"]
    assert metadata["bought_tied_with_left_out"] == POOL.k and metadata["distinct_bought_scores"] == 1
    assert "the tie-break decided" in metadata["summary"] and np.isclose(metadata["lowest_bought_score"], -25.5)
