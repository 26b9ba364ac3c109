"""The project configuration: one ``ceal.yaml`` that every run of a deployment uses.

The schedule's runs, the sensors' runs, a Launchpad run and the CLI all see the
same source, storage, detector and round parameters: the code location reads the
file once when it loads (:func:`ceal_pipeline.defs.build_defs`) and hands it to
the resources (:func:`ceal_pipeline.defs.resources.resources_for`); nothing reads
it at import time. Where the file is
and how variables amend it: :mod:`.loading`; what it may say: :mod:`.schema`;
the presets ``cpu-small`` and ``gpu``: :mod:`.presets`.
"""

from __future__ import annotations

from pathlib import Path

from ceal_pipeline.configuration.loading import (
    CONFIG_FILE_NAME,
    ENVIRONMENT,
    ProjectConfigError,
    config_path,
    default_home,
    load_project_config,
    read_config_file,
)
from ceal_pipeline.configuration.presets import DEFAULT_PRESET, PRESETS
from ceal_pipeline.configuration.schema import ProjectConfig


def storage_home() -> Path:
    """The folder of all state (``storage.home``, read now): benchmarks keep their results and caches under it."""
    return Path(load_project_config().storage.home)


__all__ = [
    "CONFIG_FILE_NAME", "DEFAULT_PRESET", "ENVIRONMENT", "PRESETS", "ProjectConfig", "ProjectConfigError",
    "config_path", "default_home", "load_project_config", "read_config_file", "storage_home",
]
