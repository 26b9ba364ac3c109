"""The acquisition domain: one CEAL round as assets, checks, jobs, a schedule and sensors."""

import dagster as dg

from ceal_pipeline.defs.acquisition.assets import acquisition_assets
from ceal_pipeline.defs.acquisition.jobs import acquisition_jobs
from ceal_pipeline.defs.acquisition.schedules import acquisition_schedules
from ceal_pipeline.defs.acquisition.sensors import acquisition_sensors

acquisition_defs = dg.Definitions(
    assets=acquisition_assets,
    jobs=acquisition_jobs,
    schedules=acquisition_schedules,
    sensors=acquisition_sensors,
)
