"""Argument types that refuse, at parse time, what would crash later or do nothing.

argparse reports an ``ArgumentTypeError`` as a usage error (exit 2, no
traceback), naming the option; each type here says what is allowed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

#: Rounds and shards are INTEGER keys in the history.
MAX_INDEX = 2**31 - 1
T = TypeVar("T")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def round_index(text: str) -> int:
    """A round number: 0 to 2**31 - 1."""
    value = _integer(text)
    if not 0 <= value <= MAX_INDEX:
        raise argparse.ArgumentTypeError(f"round {value} is out of range: rounds are numbered 0 to {MAX_INDEX}")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1 (a count of 0 or less would do nothing)."""
    value = _integer(text)
    if not 1 <= value <= MAX_INDEX:
        raise argparse.ArgumentTypeError(f"{value} is not a count from 1 to {MAX_INDEX}; a run that does nothing "
                                         "is refused")
    return value


def plain_text(text: str) -> str:
    """A path or name without NUL bytes (which no file system allows)."""
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL byte, which no path or name may hold")
    return text


def existing_history(path: str | Path, command: str) -> Path:
    """``path`` as the history file of an existing project: refuses a folder and a file that
    does not exist (a command that records something must not create an empty history)."""
    path = Path(plain_text(str(path))).expanduser()
    if path.is_dir():
        raise SystemExit(f"ceal {command}: --history {path} is a folder; give the .duckdb file of the "
                         "acquisition history (storage.history in ceal.yaml)")
    if not path.is_file():
        raise SystemExit(f"ceal {command}: no acquisition history at {path}; pass the history of a project that "
                         "has run rounds (storage.history in ceal.yaml, or --history FILE)")
    return path


#: A busy history (another process writing it) is waited out this often, this long apart, as the assets do.
BUSY_ATTEMPTS = 12
BUSY_WAIT_S = 5.0


def waiting_out_busy_history(operation: Callable[[], T], command: str, *, attempts: int = BUSY_ATTEMPTS,
                             wait_s: float = BUSY_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> T:
    """``operation()``, retried while the history is open for writing in another process (a
    round running): DuckDB allows one writer, and each history operation is one transaction,
    so a retry repeats nothing that was committed."""
    import sys

    from ceal_pipeline.core.history import HistoryLocked

    for _ in range(attempts - 1):
        try:
            return operation()
        except HistoryLocked:
            print(f"ceal {command}: the acquisition history is busy (a round is writing it); waiting {wait_s:.0f} s",
                  file=sys.stderr)
            sleep(wait_s)
    try:
        return operation()
    except HistoryLocked as exc:
        raise SystemExit(f"ceal {command}: the acquisition history stayed busy for {attempts * wait_s:.0f} s "
                         f"({exc}); try again when the round has finished") from None


def open_history(path: str | Path | None, command: str):
    """The acquisition history at ``path`` (default: ``storage.history`` of the project
    configuration), which must exist (:func:`existing_history`), opened once a running
    round lets go of it (:func:`waiting_out_busy_history`)."""
    from ceal_pipeline.core.history import AcquisitionHistory

    if path is None:
        from ceal_pipeline.configuration import load_project_config

        path = load_project_config().storage.history
    checked = existing_history(path, command)
    return waiting_out_busy_history(lambda: AcquisitionHistory(checked), command)
