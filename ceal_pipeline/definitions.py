"""The single Dagster code location of ceal-pipeline (``dagster dev -w workspace.yaml``)."""

from ceal_pipeline.defs import build_defs

defs = build_defs()
