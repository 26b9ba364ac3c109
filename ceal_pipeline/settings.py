"""Deployment defaults read from the environment when the code location loads.

The resources' fields default to these values, so every run of a deployment
(the schedule's, the sensors', a Launchpad run, the CLI's) sees the same
source and detector without anyone retyping them into run config. Like the
storage locations in :mod:`ceal_pipeline.paths`, they are read once, at load,
and shown in the UI as the resources' defaults.

===========================  ======================  ================================"""

from __future__ import annotations

import os
from pathlib import Path


def _choice(variable: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(variable, default)
    if value not in choices:
        raise ValueError(f"{variable}={value!r}: use one of {', '.join(choices)} (or unset it for {default!r})")
    return value


def _count(variable: str, default: int) -> int:
    value = os.environ.get(variable)
    if value is None:
        return default
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{variable}={value!r} is not a whole number; set e.g. {variable}={default}") from None
    if count < 0:
        raise ValueError(f"{variable}={value!r} must not be negative")
    return count


def source_kind() -> str:
    return _choice("CEAL_SOURCE_KIND", "synthetic", ("synthetic", "mmdet3d", "aimotive"))


def source_info() -> str:
    return os.environ.get("CEAL_SOURCE_INFO", "")


def synthetic_frames() -> int:
    return _count("CEAL_SYNTHETIC_FRAMES", 2000)


def label_mode() -> str:
    return _choice("CEAL_LABEL_MODE", "simulated_vendor", ("source", "simulated_vendor"))


def seed_labeled() -> int:
    return _count("CEAL_SEED_LABELED", 100)


def detector_config() -> str:
    return os.environ.get("CEAL_DETECTOR_CONFIG", "bevfusion_lite")


def device() -> str:
    return os.environ.get("CEAL_DEVICE", "auto")


def vendor_uri_base() -> str:
    return os.environ.get("CEAL_VENDOR_URI_BASE", "")


def nightly_run_config() -> dict:
    """The run config of the schedule's ``nightly_acquisition`` runs: the YAML file ``CEAL_NIGHTLY_RUN_CONFIG``
    names, or ``{}`` (the config classes' defaults) when it is unset."""
    value = os.environ.get("CEAL_NIGHTLY_RUN_CONFIG", "")
    if not value:
        return {}
    import yaml

    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"CEAL_NIGHTLY_RUN_CONFIG={value!r}: no such file; write the run config there "
                         "(e.g. 'ops: {candidate_pool: {config: {k: 20}}}') or unset the variable")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"CEAL_NIGHTLY_RUN_CONFIG={value!r}: the file holds a {type(config).__name__}, not a "
                         "run config mapping such as 'ops: {candidate_pool: {config: {k: 20}}}'")
    return config
