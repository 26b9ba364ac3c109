"""The three jobs of a round, one per stage, so that shards can fan out between them.

Every job is partitioned: a round is an ``acquisition_rounds`` key (``r0003``) and
a shard a ``candidate_shards`` key (``r0003-s007``). A whole round is
``nightly_acquisition`` (scheduled), then one
``score_candidate_shards`` run per shard (launched by ``candidate_shards_sensor``,
each a step in the ``gpu`` pool), then ``round_selection`` (launched by
``round_complete_sensor`` when every shard is scored). Dagster cannot put
assets with different partitions in one job, and this split is also what lets
the shards run on separate GPU workers. ``ceal demo`` and the tests chain the
same three jobs in-process (:mod:`ceal_pipeline.defs.acquisition.round_runner`).
"""

import json

import dagster as dg

from ceal_pipeline.defs.acquisition.assets import closing_assets, opening_assets, scoring_assets
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, candidate_shards

nightly_acquisition = dg.define_asset_job(
    name="nightly_acquisition",
    selection=dg.AssetSelection.assets(*opening_assets),
    partitions_def=acquisition_rounds,
    description="Open the next acquisition round (or resume the open one): read the catalog, register it in the "
    "history, take in vendor labels, train the detector, draw the candidate pool and its shards. The sensors "
    "carry the round on through scoring, selection and export.",
)

#: Where a shard run goes on Kubernetes (K8sRunLauncher, docker/k8s/values.yaml): every run is
#: a pod, and a shard's asks for one GPU (the NVIDIA device plugin's resource) and tolerates the
#: GPU nodes' usual taint, so the scheduler puts it on a GPU node. Other run launchers ignore the tag.
GPU_RUN_K8S_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def shard_run_tags(device: str) -> dict[str, str]:
    """The shard runs' tags for the configured ``detector.device``: the GPU request above unless
    the detector runs on the CPU (``auto`` asks for one: on Kubernetes the pod sees a GPU only if it asks).
    ``candidate_shards_sensor`` puts them on each shard run it launches (the device is the deployment's,
    known when the sensor runs, not when this module is imported)."""
    return {} if device == "cpu" else {"dagster-k8s/config": json.dumps(GPU_RUN_K8S_CONFIG)}

score_candidate_shards = dg.define_asset_job(
    name="score_candidate_shards",
    selection=dg.AssetSelection.assets(*scoring_assets),
    partitions_def=candidate_shards,
    description="Score one shard of a round's candidate pool with MC-Dropout (gpu pool).",
)

round_selection = dg.define_asset_job(
    name="round_selection",
    selection=dg.AssetSelection.assets(*closing_assets),
    partitions_def=acquisition_rounds,
    description="Close a round whose shards are all scored: merge the shards into the history, prune, select "
    "the top-K and export them to the vendor outbox (blocking checks guard each step).",
)

acquisition_jobs = [nightly_acquisition, score_candidate_shards, round_selection]
