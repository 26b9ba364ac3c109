"""Open the next round with one launch from the UI: the ``open_next_round`` job.

A round is an ``acquisition_rounds`` partition key (``r0003``). The nightly
schedule adds the next key and launches ``nightly_acquisition`` for it; a person
in the UI had to add the key by hand first (job -> Partitions -> "Add a
partition") before the Launchpad would take it. ``open_next_round`` does what a
schedule tick does, on demand: Jobs -> ``open_next_round`` -> Materialize /
Launch run (no partition, no config). Its op adds the next key (or picks the
round still being opened) and tags its run with the key; ``round_opened_sensor``
then launches ``nightly_acquisition`` for that key with the project
configuration (``ceal.yaml``), and the shard and round sensors carry the round
as for a scheduled one. The decision is :func:`round_to_open`, shared with the
schedule, so both open the same round.
"""

import dagster as dg

from ceal_pipeline.defs.acquisition.jobs import nightly_acquisition
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, round_partition_key
from ceal_pipeline.defs.acquisition.round_status import IN_FLIGHT, next_round, runs_of
from ceal_pipeline.defs.resources import AcquisitionHistoryResource

#: The run tag with which ``open_next_round`` hands the round's key to ``round_opened_sensor``.
ROUND_TAG = "ceal/round"


def round_to_open(instance: dg.DagsterInstance, history: AcquisitionHistoryResource) -> tuple[str, bool] | str:
    """``(partition key, is_new)`` of the round a nightly run should work on now, or a sentence
    saying why none should start: the latest round while it is not exported and its pool not yet
    drawn (its opening died: resume it), else the next one (a new key, not added yet)."""
    round_index, is_new = next_round(instance)
    key = round_partition_key(round_index)
    if is_new:
        return key, True
    if history.exchange().published_pool(round_index) is not None:
        return (f"round {round_index} is open: its candidate pool is drawn and the sensors are carrying it through "
                "scoring, selection and export; the next round opens after its export")
    if runs_of(instance, nightly_acquisition.name, key, IN_FLIGHT):
        return f"a nightly_acquisition run for {key} is still in flight"
    return key, False


@dg.op(description="Add the next acquisition_rounds key (or pick the round whose opening did not finish) and tag "
       "this run with it; round_opened_sensor then launches nightly_acquisition for it.")
def add_next_round(context: dg.OpExecutionContext, history: AcquisitionHistoryResource) -> None:
    decision = round_to_open(context.instance, history)
    if isinstance(decision, str):
        context.log.info(f"no round opened: {decision}")
        return
    key, is_new = decision
    if is_new:
        context.instance.add_dynamic_partitions(acquisition_rounds.name, [key])
    context.instance.add_run_tags(context.run_id, {ROUND_TAG: key})
    context.log.info(f"{'added' if is_new else 'resuming'} round {key}; round_opened_sensor launches "
                     f"nightly_acquisition for it")


@dg.job(description="Open the next acquisition round now, as the nightly schedule would: launch it from the "
        "Launchpad with no config. It adds the next acquisition_rounds key (r0000, r0001, ...) and "
        "round_opened_sensor launches nightly_acquisition for it with ceal.yaml's parameters; the sensors carry "
        "the round to the export. (For other parameters launch nightly_acquisition for that key instead.)")
def open_next_round():
    add_next_round()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[open_next_round],
    request_job=nightly_acquisition,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch nightly_acquisition for the round an open_next_round run added.",
)
def round_opened_sensor(context: dg.RunStatusSensorContext):
    key = context.dagster_run.tags.get(ROUND_TAG)
    if key is None:
        return dg.SkipReason(f"run {context.dagster_run.run_id} opened no round (see its log for why)")
    return dg.RunRequest(run_key=f"open-{context.dagster_run.run_id}", partition_key=key,
                         tags={"ceal/opened_by": "ui"})
