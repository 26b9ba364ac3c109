"""Atomic file writes: a temporary sibling, fsync, then a rename.

A reader sees either the old file or the new one, never half of one, and a
writer killed mid-write leaves only a ``.<name>.<pid>.tmp`` behind, which the
next run's writer of that folder removes (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed
    onto ``path``, on error removed. For writers that take a file name (Parquet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_target(path) as tmp:
        Path(tmp).write_bytes(data)


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")
#: A temporary file untouched this long, whose writer is not running here, was left by a killed writer.
STALE_AFTER_S = 600.0


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: keep the file
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the ``.<name>.<pid>.tmp`` files in ``folder`` left by killed writers; return them.

    A temporary file is stale when its writer's pid is not running on this machine and it
    was not modified for ``older_than_s`` seconds (a writer on another machine sharing the
    folder keeps touching its file while it writes). Only regular files are removed.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than_s or _running(int(match.group(1))):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
