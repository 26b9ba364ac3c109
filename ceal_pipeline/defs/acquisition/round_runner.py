"""Run one whole acquisition round in this process, through the same three jobs.

With the Dagster daemon the schedule and the two sensors chain
``nightly_acquisition`` -> one ``score_candidate_shards`` run per shard ->
``round_selection``. Without a daemon (``ceal demo``, the round benchmark,
tests) :func:`run_acquisition_round` chains them itself, asking the same
questions the schedule and the sensors ask (:func:`round_status.next_round`,
:func:`unscored_shard_keys`), so a round that was killed part-way resumes with
the missing shards only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ceal_pipeline.defs.acquisition.jobs import nightly_acquisition, round_selection, score_candidate_shards
from ceal_pipeline.defs.acquisition.metadata_notes import number_or_nan
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, round_partition_key
from ceal_pipeline.defs.acquisition.round_inputs import require_published_pool
from ceal_pipeline.defs.acquisition.round_status import next_round
from ceal_pipeline.defs.acquisition.shard_scoring import unscored_shard_keys


@dataclass
class RoundReport:
    """What one round did and cost (seconds are wall-clock in this process)."""

    round_index: int
    labeled_frames: int
    unlabeled_frames: int
    pool_frames: int
    shards: int
    shards_scored: list[str]
    frames_scored: int
    selected: int
    map_val: float
    export_folder: str
    new_export: bool
    opening_s: float
    pool_s: float
    scoring_s: float
    closing_s: float
    ledger: dict = field(default_factory=dict)

    @property
    def acquisition_s(self) -> float:
        """Drawing the pool, scoring it and selecting: what CEAL makes cheaper (no training)."""
        return self.pool_s + self.scoring_s + self.closing_s


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    materializations = result.asset_materializations_for_node(asset)
    if not materializations:
        return {}
    return {key: value.value for key, value in materializations[-1].metadata.items()}


def _step_seconds(instance: dg.DagsterInstance, run_id: str, step_key: str) -> float:
    for stats in instance.get_run_step_stats(run_id):
        if stats.step_key == step_key and stats.start_time and stats.end_time:
            return stats.end_time - stats.start_time
    return 0.0


def _configs_for(
    job: dg.UnresolvedAssetJobDefinition, configs: Mapping[str, dg.Config], defs: dg.Definitions, log_level: str
) -> dg.RunConfig:
    """The subset of per-asset configs that belong to ``job`` (Dagster rejects config for other ops)."""
    node_names = {node.name for node in defs.resolve_job_def(job.name).nodes_in_topological_order}
    return dg.RunConfig(
        ops={name: config for name, config in configs.items() if name in node_names},
        loggers={"console": {"config": {"log_level": log_level}}},
    )


def local_instance(dagster_home: Path) -> dg.DagsterInstance:
    """A persistent Dagster instance in ``dagster_home`` with the project's ``dagster.yaml`` (pools,
    run retries), for rounds run in this process (``ceal demo``, ``ceal round``); ``make dev`` on
    the same folder shows their runs."""
    import os
    import shutil

    dagster_home.mkdir(parents=True, exist_ok=True)
    project_yaml = Path(__file__).resolve().parents[3] / "dagster.yaml"
    if project_yaml.is_file() and not (dagster_home / "dagster.yaml").is_file():
        shutil.copyfile(project_yaml, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home.resolve())
    instance = dg.DagsterInstance.get()
    # Without a daemon nobody frees the pool slots of a process killed mid-step (Ctrl-C):
    # fail its abandoned runs and release their slots, or the next round would wait on them.
    stale = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    for run in stale:
        instance.report_run_failed(run, "abandoned by an interrupted in-process round (ceal demo / ceal round)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return instance


def run_acquisition_round(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    configs: Mapping[str, dg.Config] | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str = "DEBUG",
) -> RoundReport:
    """Open (or resume) a round, score its missing shards, then select and export.

    ``configs`` maps asset names to their ``Config`` (e.g. ``{"selected_batch":
    SelectionConfig(k=20)}``). A failing step re-raises its exception after the steps
    before it committed their work, like a run killed at that point.
    """
    configs = dict(configs or {})
    tags = dict(tags or {})
    round_index, is_new = next_round(instance)
    key = round_partition_key(round_index)
    if is_new:
        instance.add_dynamic_partitions(acquisition_rounds.name, [key])

    started = time.perf_counter()
    opening = defs.resolve_job_def(nightly_acquisition.name).execute_in_process(
        instance=instance, run_config=_configs_for(nightly_acquisition, configs, defs, log_level), tags=tags,
        partition_key=key,
    )
    opening_s = time.perf_counter() - started
    pool = _metadata(opening, "candidate_pool")
    trained = _metadata(opening, "detector")
    pool_s = _step_seconds(instance, opening.run_id, "candidate_pool")

    exchange = defs.resources["history"].exchange()
    scoring_job = defs.resolve_job_def(score_candidate_shards.name)
    shard_config = _configs_for(score_candidate_shards, configs, defs, log_level)
    started = time.perf_counter()
    scored_keys = unscored_shard_keys(exchange, require_published_pool(exchange, round_index))
    for shard_key in scored_keys:
        scoring_job.execute_in_process(instance=instance, partition_key=shard_key, run_config=shard_config, tags=tags)
    scoring_s = time.perf_counter() - started

    started = time.perf_counter()
    closing = defs.resolve_job_def(round_selection.name).execute_in_process(
        instance=instance, run_config=_configs_for(round_selection, configs, defs, log_level), tags=tags,
        partition_key=key,
    )
    closing_s = time.perf_counter() - started
    merged = _metadata(closing, "merged_scores")
    selected = _metadata(closing, "selected_batch")
    exported = _metadata(closing, "vendor_export")
    return RoundReport(
        round_index=round_index,
        labeled_frames=int(trained.get("labeled_frames", 0)),
        unlabeled_frames=int(pool["unlabeled_frames"]),
        pool_frames=int(pool["pool_frames"]),
        shards=int(pool["shards"]),
        shards_scored=scored_keys,
        frames_scored=int(merged.get("frames_scored", 0)),
        selected=int(selected.get("k", 0)),
        map_val=number_or_nan(trained.get("mAP_val")),
        export_folder=str(exported.get("folder", "")),
        new_export=bool(exported.get("new_export", False)),
        opening_s=opening_s,
        pool_s=pool_s,
        scoring_s=scoring_s,
        closing_s=closing_s,
        ledger=dict(selected.get("ledger", {})),
    )
