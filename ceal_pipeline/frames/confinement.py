"""Keeping the files an info file names inside the dataset.

An info file is data, not configuration: a ``../`` path or an absolute path
elsewhere in it must not make the pipeline read ``/etc/passwd`` or another
team's files. Folders outside the dataset root are allowed only by
configuration (``extra_roots``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class PathConfinement:
    """Which folders the files an info file names may be in: ``root``, the
    configured prefix folders, and ``extra_roots`` (configuration, e.g. a shared
    sweeps folder). Lexical: paths are compared after ``normpath``."""

    def __init__(self, root: Path, prefixes: Iterable[str | None] = (), extra_roots: Iterable[str | Path] = ()):
        self.root = os.path.normpath(os.path.abspath(root))
        folders = [Path(root)] + [Path(root) / prefix for prefix in prefixes if prefix]
        folders += [Path(extra) for extra in extra_roots]
        self.folders = tuple(sorted({os.path.normpath(os.path.abspath(f)) for f in folders}))
        self._prefixes = tuple(f.rstrip("/") + "/" for f in self.folders)

    def problem(self, path: str) -> str | None:
        """``None`` when ``path`` is inside an allowed folder, else the reason and the fix."""
        absolute = path if path.startswith("/") else os.path.abspath(path)
        if ("/." in absolute or "//" in absolute) and os.path.normpath(absolute) != absolute:
            absolute = os.path.normpath(absolute)
        if absolute.startswith(self._prefixes) or absolute in self.folders:
            return None
        return (f"path {path} is outside the dataset root {self.root}: an info file may only name files "
                "under the root (fix the info file, or allow the folder with extra_roots / --extra-root)")
