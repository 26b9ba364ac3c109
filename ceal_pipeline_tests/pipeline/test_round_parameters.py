"""A round's parameters are set once, when nightly_acquisition opens it, and every later run of the
round uses them: the sensors launch shard and selection runs with no run config at all."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from ceal_pipeline.configuration.schema import RoundSection
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, CandidateScoresConfig
from ceal_pipeline.defs.config_fields import plain

from .conftest import open_round

OPENED_WITH = CandidatePoolConfig(
    shard_size=40, k=4, per_sequence_cap=0, mc_passes=3, acquisition_fn="heatmap_entropy", aggregate="max",
    prune=False, temperature=0.7, run_seed=11,
)


def _score_every_shard(defs, instance, run_config=None):
    results = []
    for key in sorted(instance.get_dynamic_partitions("candidate_shards")):
        results.append(defs.resolve_job_def("score_candidate_shards").execute_in_process(
            instance=instance, partition_key=key, run_config=run_config or {}))
    return results


def test_every_round_parameter_is_recorded_when_the_round_opens(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": OPENED_WITH}))
    recorded = resources["history"].open().round_parameters(0)
    assert set(RoundSection.model_fields) <= set(recorded)  # every parameter, set or the deployment's
    for name, value in plain(OPENED_WITH.model_dump()).items():
        if value is not None:
            assert recorded[name] == value, name


def test_shards_launched_without_config_score_with_the_rounds_mc_passes_and_acquisition_function(
    defs, instance, resources
):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": OPENED_WITH}))
    # As the candidate_shards_sensor launches them (only execution settings may differ per run).
    results = _score_every_shard(defs, instance, dg.RunConfig(ops={"candidate_scores": CandidateScoresConfig(batch_size=2)}))
    # What the scorer was asked, as it received it (not what the asset reports it asked).
    calls = [json.loads(line) for line in Path(resources["model_store"].call_log).read_text().splitlines()]
    assert len(calls) == len(results) > 1
    assert {(c["mc_passes"], c["acquisition_fn"], c["aggregate"]) for c in calls} == {(3, "heatmap_entropy", "max")}
    assert sum(c["frames"] for c in calls) == len(resources["history"].open().candidate_pool(0))
    for result in results:
        shard = result.asset_materializations_for_node("candidate_scores")[0].metadata
        assert (shard["acquisition_fn"].value, shard["mc_passes"].value) == ("heatmap_entropy", 3)
    events = resources["history"].open()
    closing = defs.resolve_job_def("round_selection").execute_in_process(instance=instance, partition_key="r0000")
    assert closing.success
    assert closing.asset_materializations_for_node("pruned_frames")[0].metadata["enabled"].value is False
    assert closing.asset_materializations_for_node("selected_batch")[0].metadata["k"].value == 4
    assert events.score_event_count() > 0


def test_a_launchpad_change_to_the_default_config_does_not_reach_an_open_round(defs, instance, resources):
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": OPENED_WITH}))
    # Re-running the opening with other values resumes the round as it was opened.
    again = open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(shard_size=40, k=9,
                                                                                               mc_passes=20)}))
    assert again.asset_materializations_for_node("candidate_pool")[0].metadata["reused_pool"].value is True
    recorded = resources["history"].open().round_parameters(0)
    assert (recorded["k"], recorded["mc_passes"]) == (4, 3)


def test_reopening_a_half_opened_round_with_other_parameters_fails_once_naming_the_recorded_ones(
    defs, instance, resources, monkeypatch
):
    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.defs.acquisition.failures import permanent_failure_of

    def killed(*args, **kwargs):
        raise RuntimeError("killed between recording the round and saving its pool")

    with monkeypatch.context() as patch:
        patch.setattr(AcquisitionHistory, "save_candidate_pool", killed)
        assert not open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": OPENED_WITH}),
                              raise_on_error=False).success

    other = open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": CandidatePoolConfig(shard_size=40, k=9, per_sequence_cap=0)}),
                       raise_on_error=False)

    assert not other.success
    reason = permanent_failure_of(instance, instance.get_run_by_id(other.run_id))
    assert "round 0 was started with seed" in reason and '"k": 4' in reason
    assert open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": OPENED_WITH})).success  # its own resume it


def test_a_rank_combination_is_ranked_among_all_the_rounds_candidates_not_within_each_shard(
    defs, instance, resources
):
    ranked = OPENED_WITH.model_copy(update={"acquisition_fn": "localization_and_heatmap_ranks", "aggregate": "mean"})
    open_round(defs, instance, dg.RunConfig(ops={"candidate_pool": ranked}))
    results = _score_every_shard(defs, instance)
    assert len(results) > 1 and all(r.success for r in results)
    closing = defs.resolve_job_def("round_selection").execute_in_process(instance=instance, partition_key="r0000")
    assert closing.success
    assert closing.asset_materializations_for_node("merged_scores")[0].metadata["ranked_over_all_shards"].value

    # What each worker wrote: its frames' terms, and their ranks among its own shard only.
    shards = sorted((Path(resources["history"].shard_dir) / "round-0000").glob("s*.parquet"))
    tables = [pq.read_table(path).to_pydict() for path in shards]
    ids = [f for t in tables for f in t["frame_id"]]
    terms = {name: np.concatenate([t[f"term_{name}"] for t in tables]) for name in ("localization", "heatmap")}
    within = np.concatenate([t["score"] for t in tables])
    # What the history holds: the same terms ranked among all of the round's candidates.
    stored = resources["history"].open().round_scores(0)
    by_id = dict(zip(stored.frame_ids, stored.scores))
    expected = rank_normalised_combination(terms, {"localization": 1.0, "heatmap": 1.0})
    np.testing.assert_allclose([by_id[f] for f in ids], expected)
    assert not np.allclose(within, expected)
