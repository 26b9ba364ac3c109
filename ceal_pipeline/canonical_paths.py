"""One spelling per file: the path every component stores and compares.

A dataset root reached through a symbolic link (``../shared -> /mnt/data``), a
relative path or ``~`` names the same files as its target; the catalog, ``ceal
init``, the configuration and the frame readers must all store the same string
for it, or a frame read one way does not equal the same frame read another way
(and an incremental ingest sees a "new" source). Every place that keeps or
compares a filesystem path takes it through :func:`canonical_path` once, where
the path enters.
"""

from __future__ import annotations

import os
from pathlib import Path


def canonical_path(path: str | os.PathLike) -> Path:
    """``path`` absolute, ``~`` expanded and every symbolic link resolved (it need not exist)."""
    return Path(path).expanduser().resolve()

