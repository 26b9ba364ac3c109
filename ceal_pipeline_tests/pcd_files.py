"""A PCD reader for the tests: what the labeling tools would read from the export's point clouds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ceal_pipeline.export.point_cloud_files import _NUMPY_OF


def read_pcd(data: bytes | str | Path) -> dict[str, np.ndarray]:
    """Field name -> ``(P,)`` array of a ``DATA binary`` or ``DATA ascii`` PCD file (bytes or a path)."""
    if not isinstance(data, (bytes, bytearray)):
        data = Path(data).read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    while True:
        end = data.index(b"\n", offset)
        line = data[offset:end].decode("ascii").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = re.split(r"\s+", line)
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    names, sizes, types = header["FIELDS"], [int(s) for s in header["SIZE"]], header["TYPE"]
    record = np.dtype([(n, _NUMPY_OF[(t, s)]) for n, t, s in zip(names, types, sizes)])
    count = int(header["POINTS"][0])
    if header["DATA"][0] == "binary":
        packed = np.frombuffer(data, dtype=record, count=count, offset=offset)
        return {n: np.array(packed[n]) for n in names}
    if header["DATA"][0] == "ascii":
        rows = np.loadtxt(data[offset:].decode("ascii").splitlines(), ndmin=2)
        return {n: rows[:, i].astype(record[n]) for i, n in enumerate(names)}
    raise ValueError(f"PCD DATA {header['DATA'][0]!r} is not read here (binary or ascii)")
