"""The code location: a snapshot of asset keys, checks, jobs and automation, and load-time rules.

A renamed asset or a job that silently stops selecting one shows up here as a
visible diff (as in dagster-open-platform's snapshot tests).
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from ceal_pipeline.defs.acquisition import config as acquisition_config
from ceal_pipeline.definitions import defs as code_location

ACQUISITION_ASSETS = {
    "frame_catalog": ("catalog", None),
    "acquisition_history": ("acquisition", "duckdb"),
    "labeled_set": ("acquisition", "duckdb"),
    "detector": ("acquisition", "gpu"),
    "candidate_pool": ("acquisition", "duckdb"),
    "candidate_scores": ("acquisition", "gpu"),
    "merged_scores": ("acquisition", "duckdb"),
    "pruned_frames": ("acquisition", "duckdb"),
    "selected_batch": ("acquisition", "duckdb"),
    "vendor_export": ("acquisition", "duckdb"),
}
VALIDATION_ASSETS = {"mnist_benchmark", "cifar10_benchmark", "detection_benchmark"}
#: Every asset of a round is partitioned by round or by shard; the catalog and the history are shared.
PARTITIONS = {
    "frame_catalog": None,
    "acquisition_history": None,
    "labeled_set": "acquisition_rounds",
    "detector": "acquisition_rounds",
    "candidate_pool": "acquisition_rounds",
    "candidate_scores": "candidate_shards",
    "merged_scores": "acquisition_rounds",
    "pruned_frames": "acquisition_rounds",
    "selected_batch": "acquisition_rounds",
    "vendor_export": "acquisition_rounds",
}
JOB_SELECTIONS = {
    "nightly_acquisition": ["frame_catalog", "acquisition_history", "labeled_set", "detector", "candidate_pool"],
    "score_candidate_shards": ["candidate_scores"],
    "round_selection": ["merged_scores", "pruned_frames", "selected_batch", "vendor_export"],
}
BLOCKING_CHECKS = {
    ("merged_scores", "no_score_for_unknown_frame"),
    ("selected_batch", "selection_is_k_fresh_unlabeled_unpruned_unique"),
    ("vendor_export", "export_matches_selection"),
}
#: Checks that warn without stopping the round (a valid purchase a person should look at).
WARNING_CHECKS = {("selected_batch", "selection_not_decided_by_ties")}


def test_asset_keys_groups_and_pools_snapshot():
    graph = code_location.resolve_asset_graph()
    found = {
        a.key.to_user_string(): (a.group_names_by_key[a.key], a.op.pool)
        for a in graph.assets_defs
        if a.is_executable and a.key.to_user_string() in ACQUISITION_ASSETS
    }
    assert found == ACQUISITION_ASSETS
    # the validation domain (MNIST / CIFAR-10 / detection) is merged in, in its own group
    others = {k.to_user_string() for k in graph.get_all_asset_keys()} - set(ACQUISITION_ASSETS)
    assert others == VALIDATION_ASSETS
    assert all(graph.get(dg.AssetKey(k)).group_name == "validation" for k in others)


def test_job_selections_snapshot():
    for job, assets in JOB_SELECTIONS.items():
        nodes = [n.name for n in code_location.resolve_job_def(job).nodes_in_topological_order]
        assert nodes == assets, job
    jobs = {job: code_location.resolve_job_def(job).partitions_def.name for job in JOB_SELECTIONS}
    assert jobs == {
        "nightly_acquisition": "acquisition_rounds",
        "score_candidate_shards": "candidate_shards",
        "round_selection": "acquisition_rounds",
    }


def test_rounds_and_shards_are_partitions_snapshot():
    graph = code_location.resolve_asset_graph()
    found = {}
    for name in PARTITIONS:
        partitions_def = graph.get(dg.AssetKey(name)).partitions_def
        found[name] = partitions_def.name if partitions_def is not None else None
    assert found == PARTITIONS


def test_checks_are_blocking_and_automation_is_wired():
    graph = code_location.resolve_asset_graph()
    checks = {
        (spec.asset_key.to_user_string(), spec.name): spec.blocking
        for a in graph.assets_defs
        for spec in a.check_specs
        if a.key.to_user_string() in ACQUISITION_ASSETS
    }
    assert checks == {**dict.fromkeys(BLOCKING_CHECKS, True), **dict.fromkeys(WARNING_CHECKS, False)}
    schedules = {s.name: s.job_name for s in code_location.schedules}
    sensors = {s.name: s.job_name for s in code_location.sensors}
    assert schedules == {"nightly_acquisition_schedule": "nightly_acquisition"}
    assert sensors == {"candidate_shards_sensor": "score_candidate_shards", "round_complete_sensor": "round_selection",
                       "round_opened_sensor": "nightly_acquisition"}
    assert code_location.resolve_job_def("open_next_round").partitions_def is None  # one click, no partition


@pytest.mark.parametrize(
    "config_class",
    [c for c in vars(acquisition_config).values() if isinstance(c, type) and issubclass(c, dg.Config) and c is not dg.Config],
)
def test_every_config_field_has_a_default_and_a_description(config_class):
    config_class()  # a UI user can click Materialize without filling anything in
    for name, field in config_class.model_fields.items():
        assert field.description, f"{config_class.__name__}.{name} has no description for the launchpad"


def test_loading_the_code_location_imports_neither_torch_nor_mmdet3d():
    probe = "import sys, ceal_pipeline.definitions; print(sorted({'torch', 'mmdet3d', 'mmcv'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_code_location_validates():
    dg.Definitions.validate_loadable(code_location)
