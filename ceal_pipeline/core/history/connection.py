"""Short-lived DuckDB connections to the history file, one per operation.

DuckDB lets one process at a time open a database file for writing. Dagster
runs each asset step in its own process, so the store never keeps a connection
open between operations: each public method opens the file, does its work and
closes it (which also checkpoints the write-ahead log). Every method that writes
does all of its statements in one transaction; any exception rolls the whole
operation back, so a failure never leaves half of a shard, pool or selection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ceal_pipeline.core.history.errors import HistoryError
from ceal_pipeline.core.history.schema import apply_migrations


class HistoryLocked(HistoryError):
    """Another process holds the history file open for writing."""


def utc_now() -> datetime:
    """The current time as a naive UTC datetime (the schema's TIMESTAMP convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class HistoryConnection:
    """Opens the history file per operation; the base of :class:`AcquisitionHistory`.

    Args:
        path: the DuckDB file; created (with its folder) and migrated if needed.
        threads: DuckDB worker threads (default: all cores).
        memory_limit: DuckDB memory limit such as ``"2GB"`` (default: DuckDB's,
            80% of RAM). Larger-than-memory work spills to a temp folder next to
            the file.
        migrate: apply pending schema migrations on construction (default). Set
            False only for tools that must not write, e.g. a read-only inspection.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        migrate: bool = True,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise HistoryError(f"acquisition history path {self.path} is a folder; give the path of a .duckdb file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._config: dict[str, str | int] = {}
        if threads is not None:
            self._config["threads"] = int(threads)
        if memory_limit is not None:
            self._config["memory_limit"] = memory_limit
        if migrate:
            with self._connect() as con:
                apply_migrations(con)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            con = duckdb.connect(str(self.path), config=dict(self._config))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise HistoryLocked(
                    f"acquisition history {self.path} is open for writing in another process ({exc}); "
                    "DuckDB allows one writer: run assets that write it in the `duckdb` pool (limit 1) "
                    "and close other sessions (DuckDB CLI, notebooks) on this file"
                ) from exc
            raise
        try:
            # DuckDB draws a progress bar on stderr for long queries; a library must
            # not write to the terminal (and `ceal bench --json` must stay clean).
            con.execute("SET enable_progress_bar = false")
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside ``BEGIN``; commits on success, rolls back on any exception."""
        with self._connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()
