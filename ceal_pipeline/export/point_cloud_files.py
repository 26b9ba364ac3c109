"""Point clouds in the encoding labeling tools read.

The catalog's LiDAR files are ``.laz`` (aiMotive) or mmdet3d ``.bin`` rows of
float32; CVAT, Segments.ai and Kognic want PCD (the Point Cloud Library's
format, version 0.7). :func:`pcd_bytes` writes one unorganised cloud
(``HEIGHT 1``) with ``DATA binary``: the header, then the points as packed
little-endian records of the given fields (the tests read such files back with
``ceal_pipeline_tests/pcd_files.py``). Their file names: :mod:`.file_names`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


#: PCD ``TYPE``/``SIZE`` of each numpy dtype written.
_PCD_TYPES = {np.dtype("<f4"): ("F", 4), np.dtype("<f8"): ("F", 8), np.dtype("<u4"): ("U", 4),
              np.dtype("<u8"): ("U", 8), np.dtype("<i4"): ("I", 4), np.dtype("u1"): ("U", 1)}
_NUMPY_OF = {(t, s): d for d, (t, s) in _PCD_TYPES.items()}


def pcd_bytes(fields: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """A binary PCD 0.7 file of ``fields`` (name, ``(P,)`` array), in that order, one point per row."""
    if not fields:
        raise ValueError("a PCD file needs at least the x, y, z fields")
    count = len(fields[0][1])
    columns = []
    for name, values in fields:
        values = np.asarray(values)
        dtype = values.dtype.newbyteorder("<") if values.dtype.itemsize > 1 else values.dtype
        if dtype not in _PCD_TYPES:
            raise ValueError(f"PCD field {name!r}: dtype {values.dtype} is not one of {sorted(map(str, _PCD_TYPES))}")
        if len(values) != count:
            raise ValueError(f"PCD field {name!r} has {len(values)} values, the first field {count}")
        columns.append((name, values.astype(dtype, copy=False)))
    record = np.dtype([(name, values.dtype) for name, values in columns])
    packed = np.empty(count, dtype=record)
    for name, values in columns:
        packed[name] = values
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(name for name, _ in columns),
        "SIZE " + " ".join(str(_PCD_TYPES[v.dtype][1]) for _, v in columns),
        "TYPE " + " ".join(_PCD_TYPES[v.dtype][0] for _, v in columns),
        "COUNT " + " ".join("1" for _ in columns),
        f"WIDTH {count}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {count}",
        "DATA binary",
    ]) + "\n"
    return header.encode("ascii") + packed.tobytes()


def xyzi_pcd(points: np.ndarray) -> bytes:
    """``float32 (P, >=4)`` x, y, z, intensity -> PCD with float32 fields ``x y z intensity``."""
    points = np.asarray(points, dtype=np.float32)
    return pcd_bytes([(name, points[:, i]) for i, name in enumerate(("x", "y", "z", "intensity"))])
