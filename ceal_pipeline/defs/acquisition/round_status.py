"""Where the acquisition rounds stand, as the schedule, the sensors and the round runner see it.

The round is a partition key (``acquisition_rounds``), added once when the round
opens. The history owns the round's export (``RoundRecord``); ``vendor_export``
is materialized for the round's partition only after the history recorded it,
so that materialization is the daemon's notice that the round closed. Whether
its shards are scored is the shard exchange's (the published pool and the
workers' score files) until they are merged. Nothing here opens the DuckDB
history, so the daemon never contends with its single writer.
"""

from __future__ import annotations

import dagster as dg

from ceal_pipeline.defs.acquisition.partitions import (
    acquisition_rounds,
    parse_round_partition_key,
    round_partition_key,
)

EXPORT_ASSET = dg.AssetKey("vendor_export")

#: Run states in which a run will still do work.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def opened_rounds(instance: dg.DagsterInstance) -> list[int]:
    """Rounds whose partition key was added, ascending."""
    keys = instance.get_dynamic_partitions(acquisition_rounds.name)
    rounds = []
    for key in keys:
        try:
            rounds.append(parse_round_partition_key(key))
        except ValueError:
            continue  # a key added by hand in another shape is not a round this code opened
    return sorted(rounds)


def latest_round(instance: dg.DagsterInstance) -> int | None:
    rounds = opened_rounds(instance)
    return rounds[-1] if rounds else None


def is_exported(instance: dg.DagsterInstance, round_index: int) -> bool:
    """True once vendor_export was materialized for the round's partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EXPORT_ASSET, asset_partitions=[round_partition_key(round_index)]), limit=1
    ).records
    return bool(records)


def next_round(instance: dg.DagsterInstance) -> tuple[int, bool]:
    """``(round, is_new)``: the round a nightly run works on: the latest one while it
    is not exported (a killed round resumes), else the next (0 at first)."""
    latest = latest_round(instance)
    if latest is None:
        return 0, True
    if is_exported(instance, latest):
        return latest + 1, True
    return latest, False


def runs_of(instance: dg.DagsterInstance, job_name: str, partition_key: str, statuses=None) -> list:
    """Runs of ``job_name`` for ``partition_key`` (any launcher: sensor, schedule, UI)."""
    return instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, tags={"dagster/partition": partition_key}, statuses=statuses)
    )
