"""File names for per-frame export files that every tool and URL accepts.

Frame ids carry ``:`` (``seq01:000004``) and ``@`` (aiMotive's ``...@Yoda``), which
Windows tools refuse in file names and URLs must escape. A per-frame file is named
by :func:`safe_file_stem`: the frame id with every character outside
``A-Z a-z 0-9 . _ -`` (and a leading ``.``) replaced by ``_``, and, when anything was replaced, ``-`` and
the first 8 hex digits of the id's sha256, so that two ids differing only in those
characters never share a file. The frame id itself is kept inside the file
(OpenLABEL: ``metadata.external_id``).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: The rule as the project manifest states it.
RULE = ("the frame id with characters other than A-Z a-z 0-9 . _ - replaced by _, plus -<first 8 hex digits of "
        "sha256(frame id)> when any was replaced; the frame id is inside the file")


def safe_file_stem(frame_id: str) -> str:
    """``seq01:000004`` -> ``seq01_000004-<8 hex>``; an id of safe characters is kept as it is."""
    stem = _UNSAFE.sub("_", frame_id)
    stem = "_" + stem[1:] if stem.startswith(".") else stem  # no hidden files
    if stem != frame_id:
        stem = f"{stem}-{hashlib.sha256(frame_id.encode()).hexdigest()[:8]}"
    return stem
