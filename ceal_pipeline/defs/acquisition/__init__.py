"""The acquisition domain: one CEAL round as assets, checks, jobs, a schedule and sensors."""

import dagster as dg

from ceal_pipeline.defs.acquisition.assets import acquisition_assets
from ceal_pipeline.defs.acquisition.jobs import acquisition_jobs
from ceal_pipeline.defs.acquisition.schedules import NIGHTLY_CRON, nightly_schedule
from ceal_pipeline.defs.acquisition.sensors import acquisition_sensors


def acquisition_defs(cron: str = NIGHTLY_CRON) -> dg.Definitions:
    """The acquisition domain, its nightly schedule on ``cron`` (UTC)."""
    return dg.Definitions(
        assets=acquisition_assets,
        jobs=acquisition_jobs,
        schedules=[nightly_schedule(cron)],
        sensors=acquisition_sensors,
    )
