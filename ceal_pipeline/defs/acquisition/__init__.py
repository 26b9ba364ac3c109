"""The acquisition domain: one CEAL round as assets, checks, jobs, a schedule and sensors."""

import dagster as dg

from ceal_pipeline.defs.acquisition.assets import acquisition_assets
from ceal_pipeline.defs.acquisition.jobs import acquisition_jobs
from ceal_pipeline.defs.acquisition.round_opener import open_next_round, round_opened_sensor
from ceal_pipeline.defs.acquisition.schedules import NIGHTLY_CRON, nightly_schedule
from ceal_pipeline.defs.acquisition.sensors import acquisition_sensors


def acquisition_defs(
    cron: str = NIGHTLY_CRON, schedule_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED
) -> dg.Definitions:
    """The acquisition domain, its nightly schedule on ``cron`` (UTC), switched on or off at first."""
    return dg.Definitions(
        assets=acquisition_assets,
        jobs=[*acquisition_jobs, open_next_round],
        schedules=[nightly_schedule(cron, schedule_status)],
        sensors=[*acquisition_sensors, round_opened_sensor],
    )
