"""Finding, reading and validating ``ceal.yaml``: preset < file < environment.

Where the file is: ``$CEAL_CONFIG`` when set (it must exist), else
``$CEAL_HOME/ceal.yaml`` (``CEAL_HOME`` defaults to ``./.ceal``) when that
exists, else none and the ``gpu`` preset applies as it is. The file's
``preset:`` (default ``gpu``) gives every value; the file's sections amend
them; then the ``CEAL_*`` variables below amend the result (a container or a CI
job moves storage or swaps the detector without editing the file). Relative
paths in the file are relative to the file's folder, in a variable to the
working directory. Every problem is reported at once, naming the file (or the
variable), the key and what is allowed.

=========================  =====================  ============================
variable                   key                    example
=========================  =====================  ============================
``CEAL_CONFIG``            (the file itself)      ``/etc/ceal/ceal.yaml``
``CEAL_HOME``              ``storage.home``       ``/var/lib/ceal``
``CEAL_HISTORY_PATH``      ``storage.history``    ``/fast/history.duckdb``
``CEAL_SHARD_DIR``         ``storage.shards``     ``/shared/shards``
``CEAL_CATALOG_DIR``       ``storage.catalog``
``CEAL_MODEL_DIR``         ``storage.models``
``CEAL_OUTBOX``            ``storage.outbox``
``CEAL_INBOX``             ``storage.inbox``
``CEAL_SOURCE_KIND``       ``source.kind``        ``aimotive``
``CEAL_DATA_ROOT``         ``source.root``        ``/data/aimotive``
``CEAL_SOURCE_INFO``       ``source.info``        ``a.pkl,b.pkl``
``CEAL_SYNTHETIC_FRAMES``  ``source.synthetic_frames``
``CEAL_LABEL_MODE``        ``source.label_mode``
``CEAL_SEED_LABELED``      ``source.seed_labeled``
``CEAL_DETECTOR_CONFIG``   ``detector.config``    ``bevfusion_tiny``
``CEAL_DEVICE``            ``detector.device``    ``cuda:1``
``CEAL_VENDOR_URI_BASE``   ``source.uri_base``    ``s3://fleet-data/aimotive``
=========================  =====================  ============================
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from ceal_pipeline.configuration.presets import DEFAULT_PRESET, PRESETS, choose_preset
from ceal_pipeline.configuration.schema import ProjectConfig
from ceal_pipeline.configuration.strict_yaml import StrictYamlError, check_values, load_yaml_file

CONFIG_FILE_NAME = "ceal.yaml"

#: variable -> (section, key); the paths among them are resolved against the working directory.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "CEAL_HOME": ("storage", "home"),
    "CEAL_HISTORY_PATH": ("storage", "history"),
    "CEAL_SHARD_DIR": ("storage", "shards"),
    "CEAL_CATALOG_DIR": ("storage", "catalog"),
    "CEAL_MODEL_DIR": ("storage", "models"),
    "CEAL_OUTBOX": ("storage", "outbox"),
    "CEAL_INBOX": ("storage", "inbox"),
    "CEAL_SOURCE_KIND": ("source", "kind"),
    "CEAL_DATA_ROOT": ("source", "root"),
    "CEAL_SOURCE_INFO": ("source", "info"),
    "CEAL_SYNTHETIC_FRAMES": ("source", "synthetic_frames"),
    "CEAL_LABEL_MODE": ("source", "label_mode"),
    "CEAL_SEED_LABELED": ("source", "seed_labeled"),
    "CEAL_DETECTOR_CONFIG": ("detector", "config"),
    "CEAL_DEVICE": ("detector", "device"),
    "CEAL_VENDOR_URI_BASE": ("source", "uri_base"),
}
_PATH_KEYS = {("storage", k) for k in ("home", "history", "shards", "catalog", "models", "outbox", "inbox")} | {
    ("source", "root")
}
#: storage key -> its default under storage.home
STORAGE_DEFAULTS = {
    "history": "history.duckdb", "shards": "shards", "catalog": "catalog", "models": "models",
    "outbox": "outbox", "inbox": "inbox",
}


class ProjectConfigError(ValueError):
    """``ceal.yaml`` (or a ``CEAL_*`` variable) says something the pipeline cannot use."""


def default_home(environ: Mapping[str, str] = os.environ) -> Path:
    """``$CEAL_HOME`` or ``./.ceal``, absolute."""
    return Path(environ.get("CEAL_HOME") or ".ceal").expanduser().resolve()


def config_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The project configuration file this process uses, or None (the ``gpu`` preset alone).

    Raises:
        ProjectConfigError: ``CEAL_CONFIG`` names a file that does not exist.
    """
    named = environ.get("CEAL_CONFIG")
    if named:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise ProjectConfigError(
                f"CEAL_CONFIG={named}: no such file; write one with `ceal init --source ... --root ...` "
                f"(it writes {path}), or unset CEAL_CONFIG to use {default_home(environ) / CONFIG_FILE_NAME}"
            )
        return path
    path = default_home(environ) / CONFIG_FILE_NAME
    return path if path.is_file() else None


def read_config_file(path: Path) -> dict:
    """The YAML mapping in ``path`` (empty file: ``{}``)."""
    try:  # no repeated keys, bounded depth, UTF-8 without NUL bytes (strict_yaml)
        data = load_yaml_file(path)
    except StrictYamlError as exc:
        raise ProjectConfigError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectConfigError(
            f"{path}: the top level must be a mapping with preset, source, storage, detector, round; "
            f"found a {type(data).__name__}"
        )
    return data


def load_project_config(
    path: Path | str | None = None, environ: Mapping[str, str] = os.environ, *, use_file: bool = True
) -> ProjectConfig:
    """The validated project configuration, every path absolute and every storage location set.

    ``path`` defaults to :func:`config_path`; ``use_file=False`` ignores any file
    (preset and environment only).

    Raises:
        ProjectConfigError: naming the file or variable, the key and what is allowed.
    """
    if path is None and use_file:
        path = config_path(environ)
    path = Path(path).expanduser().resolve() if path is not None else None
    written = read_config_file(path) if path is not None else {}
    where = str(path) if path is not None else "(no ceal.yaml)"

    preset = written.get("preset", DEFAULT_PRESET)
    if not isinstance(preset, str):
        raise ProjectConfigError(f"{where}: preset: {preset!r} is not a preset; use one of {', '.join(PRESETS)}")
    _check_values(written, where)
    try:
        merged: dict = copy.deepcopy(choose_preset(PRESETS, preset, f"{where}: preset"))
    except ValueError as exc:
        raise ProjectConfigError(str(exc)) from None
    merged["preset"] = preset
    origin: dict[tuple[str, str], str] = {}
    for section, values in written.items():
        if section == "preset":
            continue
        if not isinstance(values, dict):
            raise ProjectConfigError(
                f"{where}: {section}: must be a mapping of keys to values, found {values!r}"
                if section in ProjectConfig.model_fields else
                f"{where}: {section}: unknown section; the sections are {', '.join(ProjectConfig.model_fields)}"
            )
        target = merged.setdefault(section, {})
        for key, value in values.items():
            if (section, key) in _PATH_KEYS and isinstance(value, str):
                value = str((path.parent / Path(value).expanduser()).resolve())
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                value = {**target[key], **value}  # round.selection / round.budget amend the preset's, key by key
            target[key] = value
            origin[(section, key)] = where
    for variable, (section, key) in ENVIRONMENT.items():
        value = environ.get(variable)
        if not value:
            continue
        if "\x00" in value:
            raise ProjectConfigError(f"{variable}={value!r} holds a NUL byte, which no path or name may hold")
        if (section, key) in _PATH_KEYS:
            value = str(Path(value).expanduser().resolve())
        elif (section, key) == ("source", "info"):
            value = [part.strip() for part in value.split(",") if part.strip()]
        merged.setdefault(section, {})[key] = value
        origin[(section, key)] = f"{variable}={environ[variable]!r}"

    try:
        config = ProjectConfig.model_validate(merged)
    except ValidationError as exc:
        raise ProjectConfigError(_describe(exc, where, origin)) from None
    return _resolved(config, environ, where)


def _check_values(written: dict, where: str) -> None:
    try:  # booleans only where the schema has one, finite numbers, whole numbers in range
        check_values(written, where, ProjectConfig)
    except StrictYamlError as exc:
        raise ProjectConfigError(f"{exc}\nfix these keys (`ceal init` writes a valid file)") from None


def _describe(exc: ValidationError, where: str, origin: dict[tuple[str, str], str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc)
        source = origin.get(loc[:2], f"{where} (from the preset)") if len(loc) >= 2 else where
        if error["type"] == "extra_forbidden":
            section = ProjectConfig.model_fields.get(loc[0])
            known = section.annotation.model_fields if section is not None and len(loc) == 2 else ProjectConfig.model_fields
            lines.append(f"  {key}: unknown key in {source}; the keys there are {', '.join(known)}")
        elif error["type"] == "missing":
            lines.append(f"  {key}: missing in {source}")
        else:
            lines.append(f"  {key}: {error['msg']} (got {error.get('input')!r}, from {source})")
    return (
        f"the project configuration is not valid ({where}):\n" + "\n".join(lines)
        + "\nfix these keys (`ceal init` writes a valid file; the presets are cpu-small and gpu)"
    )


def _resolved(config: ProjectConfig, environ: Mapping[str, str], where: str) -> ProjectConfig:
    """Fill storage locations from storage.home and the synthetic source's root."""
    storage = config.storage
    home = Path(storage.home) if storage.home else default_home(environ)
    filled = {"home": str(home)}
    for key, default in STORAGE_DEFAULTS.items():
        filled[key] = getattr(storage, key) or str(home / default)
    source = config.source
    root = source.root
    if root is None:
        if source.kind != "synthetic":
            raise ProjectConfigError(
                f"{where}: source.root: a {source.kind} source needs its dataset folder; set source.root "
                f"(or CEAL_DATA_ROOT), e.g. with `ceal init --source {source.kind} --root PATH`"
            )
        root = str(home / "data" / "synthetic")
    if source.info and source.kind != "mmdet3d":
        raise ProjectConfigError(f"{where}: source.info names info files, which only a mmdet3d source reads; "
                                 f"remove it or set source.kind: mmdet3d")
    return config.model_copy(update={
        "storage": storage.model_copy(update=filled),
        "source": source.model_copy(update={"root": root}),
    })
