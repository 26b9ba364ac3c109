"""Converting a field of many info entries at once, one entry at a time only when that fails.

Numbers in info files are nested Python lists; converting a whole chunk's
worth in one call is what makes parsing fast, and splitting a failing group
into single entries is what keeps each broken entry's own error message.
"""

from __future__ import annotations

from itertools import chain

import numpy as np


def stack_floats(values: list, shape: tuple[int, ...]) -> np.ndarray:
    """``(len(values), *shape)`` float64 of nested lists (or arrays).

    Values of exactly ``shape`` go through ``np.fromiter`` over the flattened
    lists, several times faster than ``np.asarray`` on nested lists; anything
    else (another shape, a ragged list, non-numbers) through ``np.asarray``,
    which raises ``ValueError``/``TypeError`` where it must.
    """
    n = len(values)
    try:
        if (np.fromiter(map(len, values), np.int64, count=n) == shape[0]).all():
            items = values
            if len(shape) == 2:
                items = list(chain.from_iterable(values))
                if not (np.fromiter(map(len, items), np.int64, count=len(items)) == shape[1]).all():
                    raise ValueError("irregular")
            flat = np.fromiter(chain.from_iterable(items), np.float64, count=n * int(np.prod(shape)))
            return flat.reshape(n, *shape)
    except (TypeError, ValueError):
        pass
    return np.asarray(values, dtype=np.float64)


RECOVERABLE = (ValueError, TypeError, KeyError, AttributeError, np.linalg.LinAlgError)


def in_groups(fn, indices: list[int], reasons: list) -> tuple[list[int], list[np.ndarray]]:
    """``fn(indices)`` for the whole group, or frame by frame when the group fails.

    ``fn`` returns a tuple of arrays; the result is ``(ok_indices, arrays)`` with
    each array the concatenation over the frames that parsed, in order; frames
    whose own call raises get its message as their reason.
    """
    if not indices:
        return [], []
    try:
        return list(indices), list(fn(indices))
    except RECOVERABLE:
        pass
    ok, parts = [], []
    for i in indices:
        try:
            parts.append(fn([i]))
            ok.append(i)
        except RECOVERABLE as exc:
            if reasons[i] is None:
                reasons[i] = (str(exc), None)
    if not parts:
        return [], []
    return ok, [np.concatenate([part[k] for part in parts]) for k in range(len(parts[0]))]
