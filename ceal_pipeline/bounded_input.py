"""Reading files that someone else wrote: bounded in size, depth and element count.

A vendor's delivery, an aiMotive annotation or a configuration file is data
from outside the pipeline. Python's parsers trust their input: ``json.loads``
recurses once per nesting level (``RecursionError`` at ~10^3 levels), keeps the
last of two equal keys without a word, and ``pickle`` will call an allowed
constructor with whatever arguments the file gives (``numpy.ndarray((10**12,))``
allocates terabytes). Everything here refuses such input *before* it costs
memory or time, with :class:`UntrustedInputError` naming the file and the limit.

- :func:`read_regular_file`: the bytes of a regular file (not a link, FIFO or
  device: opening a FIFO blocks forever), at most ``max_bytes``.
- :func:`load_json`: JSON with no repeated key in any object, at most
  ``max_depth`` levels and ``max_elements`` values.
- :class:`BoundedUnpickler`: a pickle that may build plain containers and the
  numpy arrays of :data:`ALLOWED_GLOBALS`, none larger than ``max_array_bytes``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
from pathlib import Path

#: Limits for files from outside: a delivery of 10^4 frames with 100 boxes each is ~60 MB of JSON.
MAX_FILE_BYTES = 256 * 2**20
MAX_DEPTH = 64
MAX_ELEMENTS = 20_000_000
MAX_ARRAY_BYTES = 256 * 2**20


class UntrustedInputError(ValueError):
    """A file from outside that is too large, too deep, ambiguous or not a regular file."""


def read_regular_file(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES, what: str = "file") -> bytes:
    """The bytes of ``path`` when it is a regular file (a symbolic link is not followed) of at
    most ``max_bytes``; raises :class:`UntrustedInputError` naming it otherwise."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise UntrustedInputError(f"{what} {path} is a symbolic link; links are not followed: copy the file "
                                      "itself in") from None
        raise UntrustedInputError(f"{what} {path} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedInputError(f"{what} {path} is not a regular file (a folder, FIFO, socket or device); "
                                      "only plain files are read")
        if info.st_size > max_bytes:
            raise UntrustedInputError(f"{what} {path} holds {info.st_size} bytes, more than the {max_bytes} read "
                                      "from outside; split it into smaller files")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise UntrustedInputError(f"{what} {path} holds more than the {max_bytes} bytes read from outside")
    return data


def _unique_keys(where: str):
    def hook(pairs: list[tuple[str, object]]) -> dict:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen, repeated = set(), []
            for key, _ in pairs:
                if key in seen:
                    repeated.append(key)
                seen.add(key)
            raise UntrustedInputError(f"{where}: the key {repeated[0]!r} is given twice in one object; JSON keeps "
                                      "only the last, so the file is ambiguous: give each key once")
        return out
    return hook


def check_shape(value: object, where: str, *, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS) -> None:
    """Refuse a parsed document nested deeper than ``max_depth`` or holding more than
    ``max_elements`` values (an iterative walk: it cannot itself overflow the stack)."""
    stack, count, seen = [(value, 1)], 0, set()
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_elements:
            raise UntrustedInputError(f"{where} holds more than {max_elements} values; split it into smaller files")
        if isinstance(item, (dict, list, tuple)):
            if id(item) in seen:  # a pickle may share (or loop back to) a container: walk it once
                continue
            seen.add(id(item))
            if depth > max_depth:
                raise UntrustedInputError(f"{where} is nested more than {max_depth} levels deep; no valid file of "
                                          "this kind is")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def load_json(data: bytes | str, where: str, *, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS):
    """Parse JSON from outside: UTF-8, no key repeated within an object, bounded depth and
    size. Raises :class:`UntrustedInputError` (a ``ValueError``) naming ``where``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UntrustedInputError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        value = json.loads(data, object_pairs_hook=_unique_keys(where))
    except RecursionError:
        raise UntrustedInputError(f"{where} is nested more than {max_depth} levels deep; no valid file of this kind "
                                  "is") from None
    except json.JSONDecodeError as exc:
        raise UntrustedInputError(f"{where} is not valid JSON ({exc})") from None
    check_shape(value, where, max_depth=max_depth, max_elements=max_elements)
    return value


def _bounded_array(constructor, where: str, max_bytes: int):
    """``constructor`` (``numpy.ndarray`` or ``_reconstruct``) refusing shapes over ``max_bytes``."""
    import numpy as np

    def build(*args, **kwargs):
        # ndarray(shape, dtype=float, buffer, ...) and _reconstruct(subtype, shape, dtype)
        first = 0 if constructor is np.ndarray else 1
        shape = kwargs.get("shape", args[first] if len(args) > first else ())
        dtype = kwargs.get("dtype", args[first + 1] if len(args) > first + 1 else float)
        try:
            itemsize = max(np.dtype(dtype).itemsize, 1)
        except TypeError:
            raise UntrustedInputError(f"{where}: an array dtype {dtype!r} is not a numpy dtype") from None
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
            raise UntrustedInputError(f"{where}: an array shape {shape!r} is not a list of sizes")
        n = 1
        for d in dims:
            n *= d
        if n * itemsize > max_bytes:
            raise UntrustedInputError(f"{where}: an array of shape {shape!r} is larger than the {max_bytes} bytes "
                                      "read from outside")
        if first == 1 and getattr(args[0], "wrapped_class", None) is not None:
            args = (args[0].wrapped_class, *args[1:])  # _reconstruct(<our ndarray wrapper>, ...)
        return constructor(*args, **kwargs)

    build.wrapped_class = constructor if constructor is np.ndarray else None
    return build


#: What a pickle from outside may name: numpy arrays, scalars and dtypes; never a function or class that acts.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # protocol 5 (out-of-band buffers): a view of bytes the pickle itself holds, no allocation
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class BoundedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, each array at most ``max_array_bytes``."""

    def __init__(self, data: bytes, where: str, *, max_array_bytes: int = MAX_ARRAY_BYTES):
        super().__init__(io.BytesIO(data))
        self.where, self.max_array_bytes = where, max_array_bytes

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle from outside")
        found = super().find_class(module, name)
        if name in ("ndarray", "_reconstruct"):
            return _bounded_array(found, self.where, self.max_array_bytes)
        return found


def load_pickle(data: bytes, where: str, *, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS):
    """A pickle from outside (:class:`BoundedUnpickler`), its result bounded like :func:`load_json`."""
    try:
        value = BoundedUnpickler(data, where).load()
    except UntrustedInputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError) as exc:
        raise UntrustedInputError(f"{where} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    check_shape(value, where, max_depth=max_depth, max_elements=max_elements)
    return value
