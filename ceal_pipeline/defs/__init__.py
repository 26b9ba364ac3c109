"""The Dagster shell: domains (acquisition, validation) and the resources they share.

:func:`build_defs` merges the domains and binds the resources; the code
location (``ceal_pipeline/definitions.py``) is one call to it. The validation
domain is optional: it is merged when its package is present.
"""

from __future__ import annotations

import importlib

import dagster as dg

from ceal_pipeline.defs.acquisition import acquisition_defs
from ceal_pipeline.configuration import project_config
from ceal_pipeline.defs.resources import resources_for


def default_resources() -> dict:
    """The deployment's resources, configured by its ``ceal.yaml`` (:mod:`ceal_pipeline.configuration`)."""
    return resources_for(project_config())


def _validation_defs() -> dg.Definitions | None:
    try:
        module = importlib.import_module("ceal_pipeline.defs.validation")
    except ModuleNotFoundError as exc:
        if exc.name != "ceal_pipeline.defs.validation":
            raise
        return None
    return getattr(module, "validation_defs", None)


def build_defs(resources: dict | None = None, *, with_validation: bool = True) -> dg.Definitions:
    """The whole code location; ``resources`` replaces the defaults (tests, the demo).

    ``with_validation=False`` leaves out the MNIST / CIFAR-10 validation assets
    (the acquisition round does not need them)."""
    domains = [acquisition_defs]
    validation = _validation_defs() if with_validation else None
    if validation is not None:
        domains.append(validation)
    return dg.Definitions.merge(*domains, dg.Definitions(resources=resources or default_resources()))
