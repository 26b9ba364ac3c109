"""The nightly schedule: opens a round at 02:00 UTC (``CEAL_NIGHTLY_CRON``, read by
:func:`ceal_pipeline.defs.build_defs`, overrides the cron).

Its runs take no run config: the round parameters are the project configuration's
(``ceal.yaml``, :mod:`ceal_pipeline.configuration`), recorded when the round opens.

Each tick adds the next round's partition key once (or resumes the latest round
while it is neither exported nor past its pool) and launches
``nightly_acquisition`` for it. Once a round's pool is published the sensors
carry it; a tick then says so instead of starting a second opening.
"""

import dagster as dg

from ceal_pipeline.defs.acquisition.jobs import nightly_acquisition
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, round_partition_key
from ceal_pipeline.defs.acquisition.round_status import IN_FLIGHT, next_round, runs_of
from ceal_pipeline.defs.resources import AcquisitionHistoryResource

NIGHTLY_CRON = "0 2 * * *"


def open_next_round(context: dg.ScheduleEvaluationContext, history: AcquisitionHistoryResource):
    round_index, is_new = next_round(context.instance)
    key = round_partition_key(round_index)
    if not is_new:
        if history.exchange().published_pool(round_index) is not None:
            return dg.SkipReason(
                f"round {round_index} is open: its candidate pool is drawn and the sensors are carrying it through "
                "scoring, selection and export; the next round opens after its export"
            )
        if runs_of(context.instance, nightly_acquisition.name, key, IN_FLIGHT):
            return dg.SkipReason(f"a nightly_acquisition run for {key} is still in flight")
    else:
        # Added once: the next tick finds the key and resumes it if this run dies.
        context.instance.add_dynamic_partitions(acquisition_rounds.name, [key])
    return dg.RunRequest(partition_key=key, tags={"ceal/opened_by": "schedule"})


def nightly_schedule(cron: str = NIGHTLY_CRON) -> dg.ScheduleDefinition:
    """The nightly schedule on ``cron`` (UTC)."""
    return dg.schedule(
        name="nightly_acquisition_schedule",
        job=nightly_acquisition,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every night: train on what is labeled and open the next acquisition round (a new "
        "acquisition_rounds partition), or resume the latest one if its opening did not finish.",
    )(open_next_round)


#: The schedule on its default cron (what a deployment without ``CEAL_NIGHTLY_CRON`` runs).
nightly_acquisition_schedule = nightly_schedule()
