"""Field-by-field equality of FrameRecords (arrays compared exactly, NaN equal to NaN)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) \
            and np.asarray(a).dtype == np.asarray(b).dtype
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return a == b


def assert_same_records(expected: list, actual: list) -> None:
    """Every field of every record (cameras field by field) is the same."""
    assert [r.frame_id for r in actual] == [r.frame_id for r in expected]
    for want, got in zip(expected, actual):
        for f in fields(want):
            a, b = getattr(want, f.name), getattr(got, f.name)
            if f.name == "cameras":
                assert len(a) == len(b), want.frame_id
                for ca, cb in zip(a, b):
                    for cf in fields(ca):
                        assert _same(getattr(ca, cf.name), getattr(cb, cf.name)), (want.frame_id, ca.name, cf.name)
            else:
                assert _same(a, b), (want.frame_id, f.name, a, b)
