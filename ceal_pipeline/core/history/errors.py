"""Errors raised by the acquisition history store.

Every error names the offending frames, round, shard or file and says how to fix
it: the Dagster layer shows these messages verbatim in the run log, where a
data-team member (not the author of this module) has to act on them.
"""

from __future__ import annotations

from collections.abc import Sequence

#: How many offending frame ids an error message lists before summarising.
_SHOWN = 5


def describe_frames(frame_ids: Sequence[object], total: int | None = None) -> str:
    """``"3 frames (a, b, c)"`` or ``"120 frames (a, b, c, d, e, ...)"`` for messages."""
    shown = [str(f) for f in list(frame_ids)[:_SHOWN]]
    total = len(frame_ids) if total is None else total
    more = ", ..." if total > len(shown) else ""
    noun = "frame" if total == 1 else "frames"
    return f"{total} {noun} ({', '.join(shown)}{more})"


class HistoryError(ValueError):
    """Base class: the history store refused an operation; nothing was written."""


class SchemaTooNew(HistoryError):
    """The database was written by a newer ceal-pipeline than the one running."""


class InvalidScores(HistoryError):
    """Scores that are NaN, infinite or missing."""


class UnknownFrames(HistoryError):
    """Frame ids that are not in the frame catalog (``frames`` table)."""


class DuplicateFrames(HistoryError):
    """The same frame id given twice in one batch (scores, pool, selection, ...)."""


class FrameConflict(HistoryError):
    """A frame registered again with different attributes (sequence, path, ...)."""


class UnavailableFrames(HistoryError):
    """Frames that are labeled, pruned or quarantined where pool frames are needed."""


class EmptyCandidatePool(HistoryError):
    """A candidate pool with no frames, or a round that needs one and has none."""


class RoundConflict(HistoryError):
    """A round, pool, selection or export that already exists with other contents."""


class ShardConflict(HistoryError):
    """A score shard ingested before with different contents, or one that does
    not match the candidate-pool shard it claims to score."""


class ShardFileError(HistoryError):
    """A Parquet score shard that cannot be read or lacks the expected columns."""
