"""Checks of values read from a frame source that a reader would otherwise take as they come.

Each check takes a whole chunk's values at once (numpy over the stacked arrays),
so the common case, where nothing is wrong, costs no per-entry Python work;
the readers quarantine the frames a check flags, with the reason:

- :func:`singular_matrices`: a calibration or pose used as a transform
  (``lidar2cam``, ``cam2img``, ``ego2global``) must be finite and invertible:
  an all-zero matrix projects every point onto one pixel, silently;
- :data:`MAX_BOX_VALUE`: box centres, sizes and yaws beyond it (1e300 read as a
  coordinate becomes ``inf`` in the catalog's float32) are not boxes;
- :func:`has_boolean`: ``timestamp: true`` is not a time (numpy reads it as 1.0);
- :data:`MAX_POINT_FILE_BYTES`: a point file larger than any sweep is not decoded;
- :func:`first_copies`: an id repeated in a source names two frames; the first
  copy is kept and every later one quarantined, as the frame catalog does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: |value| of a box centre (m), size (m) or yaw (rad) beyond which the box is refused.
MAX_BOX_VALUE = 1.0e4
#: A matrix is singular when |det| <= this x the product of its row norms (scale-free).
MIN_RELATIVE_DETERMINANT = 1.0e-12
#: Point files larger than this are refused at ``check="points"`` (a 128-beam sweep is ~10 MB).
MAX_POINT_FILE_BYTES = 1 << 30
#: The start of the reason a repeated frame id is quarantined with.
REPEATED_ID = "duplicate frame id"


def singular_matrices(matrices: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: which of ``(n, k, k)`` matrices are not finite or not invertible."""
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"expected (n, k, k) matrices, got shape {m.shape}")
    bad = ~np.isfinite(m).all(axis=(1, 2))
    finite = ~bad
    if finite.any():
        square = m[finite]
        # Hadamard: |det| <= product of the row norms, with equality for orthogonal rows; the
        # ratio is free of units (a pose's translation in metres does not make it "singular")
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            bound = np.prod(np.linalg.norm(square, axis=2), axis=1)
            invertible = np.abs(np.linalg.det(square)) > MIN_RELATIVE_DETERMINANT * bound
        bad[finite] = ~invertible
    return bad


def out_of_range_boxes(values: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: boxes ``(n, 7)`` with a value beyond :data:`MAX_BOX_VALUE`."""
    with np.errstate(invalid="ignore"):
        return (np.abs(np.asarray(values, dtype=np.float64)) > MAX_BOX_VALUE).any(axis=1)


def has_boolean(values: Sequence) -> bool:
    """Whether a list of scalars holds a boolean (``True`` would read as 1.0): one C-level pass."""
    types = set(map(type, values))
    return bool in types or np.bool_ in types


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file (a NUL byte, which no file system allows), or None."""
    if "\x00" in path:
        return f"the path {path!r} holds a NUL byte, which no file name may hold"
    return None


def first_copies(frames: list) -> tuple[list, list]:
    """``(frames with each id once, a QuarantinedFrame for every later copy)``: the first copy
    of an id is kept (in reading order), as :mod:`ceal_pipeline.catalog.duplicates` does."""
    from ceal_pipeline.frames.records import QuarantinedFrame

    ids = [record.frame_id for record in frames]
    if len(set(ids)) == len(ids):
        return list(frames), []
    first: dict[str, object] = {}
    kept, repeats = [], []
    for record in frames:
        if record.frame_id in first:
            repeats.append(QuarantinedFrame(
                record.frame_id, f"{REPEATED_ID} {record.frame_id}: already read from "
                f"{first[record.frame_id].lidar_path}; give the frames distinct ids in their source "
                "(or a frame_id_prefix per dataset)", record.lidar_path, record.source))
        else:
            first[record.frame_id] = record
            kept.append(record)
    return kept, repeats
