"""One entry point for every frame source: ``read_source(kind, root, **options)``.

Used by the Dagster ``frame_catalog`` asset and by ``ceal inspect``, so that both
read a source the same way. Kinds and their options:

- ``"aimotive"``: :func:`ceal_pipeline.frames.aimotive.read_frames` (``check``);
- ``"mmdet3d"``: :func:`ceal_pipeline.frames.mmdet3d_info.read_frames` (``info``,
  ``lidar_prefix``, ``camera_prefix``, ``check``, ``box_frame``, ``box_origin_z``,
  ``camera_key``, ``frame_id_prefix``);
- ``"synthetic"``: :func:`ceal_pipeline.frames.synthetic.read_frames`
  (``n_frames``, ``seed``, ``overwrite``, ``check`` and any
  :class:`~ceal_pipeline.frames.synthetic.SyntheticConfig` field); ``root`` is
  where the dataset is generated, or read if it is already there.
"""

from __future__ import annotations

import inspect as _inspect
from pathlib import Path
from typing import Callable

from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.frames.result import FrameSourceResult

SOURCE_KINDS: tuple[str, ...] = ("aimotive", "mmdet3d", "synthetic")

__all__ = ["SOURCE_KINDS", "FrameSourceResult", "read_source"]


def _reader(kind: str) -> Callable[..., FrameSourceResult]:
    if kind == "aimotive":
        from ceal_pipeline.frames.aimotive import read_frames
    elif kind == "mmdet3d":
        from ceal_pipeline.frames.mmdet3d_info import read_frames
    elif kind == "synthetic":
        from ceal_pipeline.frames.synthetic import read_frames
    else:
        raise ValueError(f"unknown frame source {kind!r}: use one of {', '.join(SOURCE_KINDS)}")
    return read_frames


def read_source(kind: str, root: str | Path, **options) -> FrameSourceResult:
    """Read every frame of source ``kind`` under ``root``.

    Options left at ``None`` are dropped, so callers (CLI flags, Dagster config)
    can pass every field and let the reader's defaults apply. An option the
    reader does not take raises ``TypeError`` naming it and the accepted ones.
    ``root`` is taken through :func:`~ceal_pipeline.canonical_paths.canonical_path`,
    as the catalog takes it, so the records' paths are the catalog's however
    ``root`` was spelled (a symbolic link, a relative path).
    """
    reader = _reader(kind)
    options = {k: v for k, v in options.items() if v is not None}
    parameters = _inspect.signature(reader).parameters
    takes_any = any(p.kind is _inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(parameters))
    if unknown and not takes_any:
        accepted = sorted(n for n in parameters if n != "root")
        raise TypeError(f"frame source {kind!r} does not take option(s) {unknown}; it takes {accepted}")
    return reader(canonical_path(root), **options)
