"""The nightly schedule: opens a round at 02:00 UTC (``CEAL_NIGHTLY_CRON``, read by
:func:`ceal_pipeline.defs.build_defs`, overrides the cron).

Its runs take no run config: the round parameters are the project configuration's
(``ceal.yaml``, :mod:`ceal_pipeline.configuration`), recorded when the round opens.

Each tick adds the next round's partition key once (or resumes the latest round
while it is neither exported nor past its pool) and launches
``nightly_acquisition`` for it. Once a round's pool is published the sensors
carry it; a tick then says so instead of starting a second opening.

It starts switched on for a deployment on real data and off on the synthetic source
(``ceal demo``'s, and the ``gpu`` preset's when no ``ceal.yaml`` exists), so browsing
the demo with ``make dev`` never starts hours of training at 02:00:
:func:`nightly_default_status`; ``CEAL_NIGHTLY_SCHEDULE=on|off`` decides either way,
and the UI's toggle (Automation) overrides both for an instance.
"""

import os
from collections.abc import Mapping

import dagster as dg

from ceal_pipeline.defs.acquisition.jobs import nightly_acquisition
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds
from ceal_pipeline.defs.acquisition.round_opener import round_to_open
from ceal_pipeline.defs.resources import AcquisitionHistoryResource

NIGHTLY_CRON = "0 2 * * *"
_SWITCH = {"on": dg.DefaultScheduleStatus.RUNNING, "off": dg.DefaultScheduleStatus.STOPPED}


def nightly_default_status(source_kind: str, environ: Mapping[str, str] = os.environ) -> dg.DefaultScheduleStatus:
    """Whether the nightly schedule starts switched on: ``$CEAL_NIGHTLY_SCHEDULE`` (``on``/``off``)
    when set, else on for a real data source and off for the synthetic one (a demo or a trial)."""
    named = environ.get("CEAL_NIGHTLY_SCHEDULE", "").strip().lower()
    if named:
        if named not in _SWITCH:
            raise ValueError(f"CEAL_NIGHTLY_SCHEDULE={environ['CEAL_NIGHTLY_SCHEDULE']!r}: use 'on' or 'off' "
                             "(unset: on for a real data source, off for the synthetic one)")
        return _SWITCH[named]
    return _SWITCH["off" if source_kind == "synthetic" else "on"]


def open_or_resume_round(context: dg.ScheduleEvaluationContext, history: AcquisitionHistoryResource):
    decision = round_to_open(context.instance, history)
    if isinstance(decision, str):
        return dg.SkipReason(decision)
    key, is_new = decision
    if is_new:  # added once: the next tick finds the key and resumes it if this run dies
        context.instance.add_dynamic_partitions(acquisition_rounds.name, [key])
    return dg.RunRequest(partition_key=key, tags={"ceal/opened_by": "schedule"})


def nightly_schedule(
    cron: str = NIGHTLY_CRON, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED
) -> dg.ScheduleDefinition:
    """The nightly schedule on ``cron`` (UTC), switched on or off at first (:func:`nightly_default_status`)."""
    return dg.schedule(
        name="nightly_acquisition_schedule",
        job=nightly_acquisition,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=default_status,
        description="Every night: train on what is labeled and open the next acquisition round (a new "
        "acquisition_rounds partition), or resume the latest one if its opening did not finish. Starts on for a "
        "real data source, off for the synthetic one (the demo); CEAL_NIGHTLY_SCHEDULE=on|off decides either way.",
    )(open_or_resume_round)
