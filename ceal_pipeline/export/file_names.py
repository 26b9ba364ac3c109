"""File names for per-frame export files that every tool and URL accepts.

Frame ids carry ``:`` (``seq01:000004``) and ``@`` (aiMotive's ``...@Yoda``), which
Windows tools refuse in file names and URLs must escape. A per-frame file is named
by :func:`safe_file_stem`: the frame id with every character outside
``A-Z a-z 0-9 . _ -`` (and a leading ``.``) replaced by ``_``, and, when anything was replaced, ``-`` and
the first 8 hex digits of the id's sha256, so that two ids differing only in those
characters never share a file. The frame id itself is kept inside the file
(OpenLABEL: ``metadata.external_id``).

A labeling tool that names frames by their files alone (CVAT's ``frame_list.txt``,
Segments.ai and Kognic point-cloud names) needs the id back from the name:
:func:`frame_file_stem` encodes the characters outside ``A-Z a-z 0-9 . _ + -`` as
``%XX`` instead, reversed by :func:`frame_id_of_stem`.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote

from ceal_pipeline.frames.records import validate_frame_id

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_STEM_SAFE = "._+-"

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


def frame_file_stem(frame_id: str) -> str:
    """A file-name stem for ``frame_id``: ``%XX`` for every character outside ``[A-Za-z0-9._+-]``."""
    return quote(validate_frame_id(frame_id), safe=_STEM_SAFE)


def frame_id_of_stem(stem: str) -> str:
    """The frame id a :func:`frame_file_stem` names; raises ``InvalidFrameId`` for a stem that names none."""
    return validate_frame_id(unquote(stem, errors="strict"))
