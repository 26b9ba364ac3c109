"""Default storage locations: a project-local ``.ceal/`` folder, overridable by environment.

``CEAL_HOME`` moves everything (default ``./.ceal`` relative to where Dagster
runs, i.e. the project root for ``dagster dev`` and ``ceal demo``); each
location can also be set alone:

=====================  ==================================  ==========================
variable               default                             holds
=====================  ==================================  ==========================
``CEAL_HISTORY_PATH``  ``$CEAL_HOME/history.duckdb``       the acquisition history
``CEAL_SHARD_DIR``     ``$CEAL_HOME/shards``               pools and score shards
``CEAL_CATALOG_DIR``   ``$CEAL_HOME/catalog``              the columnar frame catalog
``CEAL_MODEL_DIR``     ``$CEAL_HOME/models``               detector checkpoints
``CEAL_DATA_ROOT``     ``$CEAL_HOME/data/synthetic``       the frame source's root
``CEAL_OUTBOX``        ``$CEAL_HOME/outbox``               vendor export drops
``CEAL_INBOX``         ``$CEAL_HOME/inbox``                vendor label deliveries
=====================  ==================================  ==========================

Values are read when the code location loads, so the Dagster UI shows the
resolved paths as the resources' defaults.
"""

from __future__ import annotations

import os
from pathlib import Path


def ceal_home() -> Path:
    """``$CEAL_HOME`` or ``./.ceal``, made absolute."""
    return Path(os.environ.get("CEAL_HOME", ".ceal")).expanduser().resolve()


def _path(variable: str, default_under_home: str) -> str:
    value = os.environ.get(variable)
    return str(Path(value).expanduser().resolve() if value else ceal_home() / default_under_home)


def history_path() -> str:
    return _path("CEAL_HISTORY_PATH", "history.duckdb")


def shard_dir() -> str:
    return _path("CEAL_SHARD_DIR", "shards")


def catalog_dir() -> str:
    return _path("CEAL_CATALOG_DIR", "catalog")


def model_dir() -> str:
    return _path("CEAL_MODEL_DIR", "models")


def data_root() -> str:
    return _path("CEAL_DATA_ROOT", "data/synthetic")


def outbox_dir() -> str:
    return _path("CEAL_OUTBOX", "outbox")


def inbox_dir() -> str:
    return _path("CEAL_INBOX", "inbox")
