"""The acquisition domain: one CEAL round as assets, checks, jobs, a schedule and sensors."""

import dagster as dg

from ceal_pipeline.defs.acquisition.assets import acquisition_assets
from ceal_pipeline.defs.acquisition.jobs import acquisition_jobs
from ceal_pipeline.defs.acquisition.round_opener import open_next_round, round_opened_sensor
from ceal_pipeline.defs.acquisition.schedules import acquisition_schedules
from ceal_pipeline.defs.acquisition.sensors import acquisition_sensors

acquisition_defs = dg.Definitions(
    assets=acquisition_assets,
    jobs=[*acquisition_jobs, open_next_round],
    schedules=acquisition_schedules,
    sensors=[*acquisition_sensors, round_opened_sensor],
)
