"""The Dagster shell: domains (acquisition, validation) and the resources they share.

:func:`build_defs` merges the domains and binds the resources; the code
location (``ceal_pipeline/definitions.py``) is one call to it. The validation
domain is optional: it is merged when its package is present.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

import dagster as dg

from ceal_pipeline.configuration import load_project_config
from ceal_pipeline.defs.acquisition import acquisition_defs
from ceal_pipeline.defs.acquisition.schedules import NIGHTLY_CRON, nightly_default_status
from ceal_pipeline.defs.resources import resources_for, run_defaults_for

#: Environment variable that moves the nightly schedule (a cron expression, UTC).
CRON_VARIABLE = "CEAL_NIGHTLY_CRON"


def default_resources() -> dict:
    """The deployment's resources, configured by its ``ceal.yaml`` (:mod:`ceal_pipeline.configuration`)."""
    return resources_for(load_project_config())


def _validation_defs() -> dg.Definitions | None:
    try:
        module = importlib.import_module("ceal_pipeline.defs.validation")
    except ModuleNotFoundError as exc:
        if exc.name != "ceal_pipeline.defs.validation":
            raise
        return None
    return getattr(module, "validation_defs", None)


def build_defs(
    resources: dict | None = None, *, with_validation: bool = True, environ: Mapping[str, str] | None = None
) -> dg.Definitions:
    """The whole code location; ``resources`` replaces the defaults (tests, the demo).

    Resources without ``run_defaults`` (the values a run takes where its run config
    leaves a field unset) get the deployment's, read now from its ``ceal.yaml``.
    ``with_validation=False`` leaves out the MNIST / CIFAR-10 validation assets
    (the acquisition round does not need them). ``environ`` (default ``os.environ``)
    may set ``CEAL_NIGHTLY_CRON`` and ``CEAL_NIGHTLY_SCHEDULE``."""
    if resources is None:
        resources = default_resources()
    elif "run_defaults" not in resources:
        resources = {**resources, "run_defaults": run_defaults_for(load_project_config())}
    environ = os.environ if environ is None else environ
    cron = environ.get(CRON_VARIABLE, NIGHTLY_CRON)
    source_kind = getattr(resources.get("frame_source"), "kind", "synthetic")
    domains = [acquisition_defs(cron, nightly_default_status(source_kind, environ))]
    validation = _validation_defs() if with_validation else None
    if validation is not None:
        domains.append(validation)
    return dg.Definitions.merge(*domains, dg.Definitions(resources=resources))
