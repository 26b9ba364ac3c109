"""Moving numpy arrays of frame ids into DuckDB and resolving them to frame keys.

Frame ids are data, never SQL: arrays reach DuckDB through ``con.register`` of a
dict of numpy arrays (DuckDB's numpy scan, no pandas or pyarrow needed) and are
copied into a connection-local temporary table. Checks (duplicates, unknown
ids) are set operations on that table, so they cost one hash aggregate or join
whatever the batch size, and they run before anything is written.

A numpy ``object`` array of Python ``str`` is the fast input: DuckDB scans it
about 7x faster than a fixed-width ``<U`` array at 10^7 ids. Note that DuckDB
reads a float NaN in a numpy array as SQL NULL, so finiteness of scores must be
checked in numpy before staging (``require_finite``).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np

from ceal_pipeline.core.history.errors import DuplicateFrames, InvalidScores, UnknownFrames, describe_frames


def require_index(value: object, name: str, what: str) -> int:
    """``value`` as a round or shard number: an ``int`` in ``[0, 2**31)`` (INTEGER columns)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**31:
        raise ValueError(f"{what}: {name} must be an integer in [0, 2**31), got {value!r}")
    return int(value)


def as_frame_id_array(frame_ids: Sequence[str] | np.ndarray, what: str) -> np.ndarray:
    """``frame_ids`` as a 1-D ``object`` array of ``str``; ``what`` names the input in errors."""
    if isinstance(frame_ids, np.ndarray) and frame_ids.dtype == object:
        array = frame_ids
    else:
        array = np.asarray(frame_ids, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{what}: frame ids must be a 1-D sequence, got shape {array.shape}")
    return array


def as_score_array(scores: Sequence[float] | np.ndarray, n: int, what: str) -> np.ndarray:
    """``scores`` as a 1-D float64 array of length ``n``."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{what}: expected {n} scores (one per frame id), got shape {array.shape}")
    return array


def require_finite(frame_ids: np.ndarray, scores: np.ndarray, what: str) -> None:
    """Raise :class:`InvalidScores` naming the frames whose score is NaN or infinite."""
    bad = ~np.isfinite(scores)
    if bad.any():
        offenders = [f"{fid}={score!r}" for fid, score in zip(frame_ids[bad][:5], scores[bad][:5])]
        raise InvalidScores(
            f"{what}: NaN or infinite scores for {describe_frames(offenders, int(bad.sum()))}; "
            "scores must be finite numbers: fix the acquisition function or drop those frames from the input "
            "(nothing was written)"
        )


def stage(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, np.ndarray]) -> None:
    """Copy equal-length numpy ``columns`` into the temporary table ``table``.

    A ``pos`` column (0..n-1) is added so that callers can restore input order:
    parallel scans in DuckDB do not promise it.
    """
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"staging {table}: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    view = f"{table}__numpy"
    # DuckDB's numpy scan reads raw buffers: a strided view (e.g. ``keys[::-1]``)
    # fails with a bad_cast, so hand it contiguous copies where needed.
    contiguous = {name: np.ascontiguousarray(values) for name, values in columns.items()}
    con.register(view, {"pos": np.arange(n, dtype=np.int64), **contiguous})
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {view}")
    except duckdb.ConversionException as exc:
        raise ValueError(f"staging {table}: an input column has values of the wrong type ({exc})") from exc
    finally:
        con.unregister(view)


def require_unique(con: duckdb.DuckDBPyConnection, table: str, what: str, column: str = "frame_id") -> None:
    """Raise :class:`DuplicateFrames` if a frame id appears twice in staged ``table``."""
    dupes = con.execute(
        f"SELECT {column} FROM {table} GROUP BY {column} HAVING count(*) > 1 ORDER BY {column} LIMIT 5"
    ).fetchall()
    if dupes:
        total = con.execute(
            f"SELECT count(*) FROM (SELECT {column} FROM {table} GROUP BY {column} HAVING count(*) > 1)"
        ).fetchone()[0]
        raise DuplicateFrames(
            f"{what}: given more than once: {describe_frames([d[0] for d in dupes], total)}; "
            "give each frame once (nothing was written)"
        )


def require_present(con: duckdb.DuckDBPyConnection, table: str, what: str, column: str = "frame_id") -> None:
    """Raise :class:`ValueError` if staged ``table`` has a NULL frame id."""
    nulls = con.execute(f"SELECT count(*) FROM {table} WHERE {column} IS NULL").fetchone()[0]
    if nulls:
        raise ValueError(f"{what}: {nulls} frame ids are missing (None/NULL); give every row a frame id")


def resolve_frame_keys(con: duckdb.DuckDBPyConnection, table: str, what: str) -> str:
    """Join staged ``table`` (with a ``frame_id`` column) to the catalog.

    Creates the temporary table ``<table>_keyed`` with every staged column plus
    ``frame_key``, in input order, and returns its name.

    Raises:
        UnknownFrames: some ids are not registered (the message names them).
    """
    keyed = f"{table}_keyed"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {keyed} AS
        SELECT s.*, f.frame_key FROM {table} s LEFT JOIN frames f ON f.frame_id = s.frame_id
        ORDER BY s.pos
        """
    )
    unknown = con.execute(f"SELECT frame_id FROM {keyed} WHERE frame_key IS NULL ORDER BY pos LIMIT 5").fetchall()
    if unknown:
        total = con.execute(f"SELECT count(*) FROM {keyed} WHERE frame_key IS NULL").fetchone()[0]
        raise UnknownFrames(
            f"{what}: not in the frame catalog: {describe_frames([u[0] for u in unknown], total)}; "
            "register them first (materialize frame_catalog) or drop them from the input (nothing was written)"
        )
    return keyed


def stage_known_frames(
    con: duckdb.DuckDBPyConnection,
    table: str,
    what: str,
    frame_ids: np.ndarray,
    *,
    unique: bool = True,
    **columns: np.ndarray,
) -> str:
    """Stage ``frame_ids`` (plus ``columns``) as ``table`` and resolve them to keys.

    The common front of every write that names registered frames: ids present,
    distinct (unless ``unique=False``) and registered. Returns the name of the
    keyed temporary table (see :func:`resolve_frame_keys`).
    """
    stage(con, table, {"frame_id": frame_ids, **columns})
    require_present(con, table, what)
    if unique:
        require_unique(con, table, what)
    return resolve_frame_keys(con, table, what)
