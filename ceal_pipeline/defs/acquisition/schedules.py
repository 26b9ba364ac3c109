"""The nightly schedule: opens a round at 02:00 UTC (``CEAL_NIGHTLY_CRON`` overrides the cron)."""

import os

import dagster as dg

from ceal_pipeline.defs.acquisition.jobs import nightly_acquisition

NIGHTLY_CRON = os.environ.get("CEAL_NIGHTLY_CRON", "0 2 * * *")

nightly_acquisition_schedule = dg.ScheduleDefinition(
    name="nightly_acquisition_schedule",
    job=nightly_acquisition,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: train on what is labeled and open an acquisition round.",
)

acquisition_schedules = [nightly_acquisition_schedule]
