"""A round's review, from its export folder to its recording: the one call the CLI and the
``round_review`` asset share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ceal_pipeline.review.recording import ReviewSummary, review_path, write_review
from ceal_pipeline.review.scene import ReviewFrame, candidate_frames, review_frames, top_unbought

#: Unbought candidates shown beside the bought frames, by default.
DEFAULT_CANDIDATES = 5


def reviews_folder(home: str | Path) -> Path:
    """The folder of review recordings of a deployment whose storage home is ``home``."""
    return Path(home) / "reviews"


def open_command(path: str | Path, round_index: int) -> str:
    """How a person opens the recording: ``ceal review`` (writes it first when missing) or Rerun's viewer."""
    return f"ceal review --round {round_index} --open   (or: rerun {path})"


def unbought_candidates(frame_ids: Sequence[str], scores: np.ndarray, bought: Sequence[str], n: int, records_of,
                        explanations_of) -> list[ReviewFrame]:
    """The round's ``n`` best-scoring candidates that were not bought, as review frames:
    ``frame_ids``/``scores`` are the round's scores, ``explanations_of(ids)`` maps id -> explanation."""
    pairs = top_unbought(frame_ids, scores, bought, n)
    return candidate_frames(pairs, records_of, explanations_of([f for f, _ in pairs]) if pairs else {})


def write_round_review(round_index: int, export_folder: str | Path, records_of,
                       path: str | Path, candidates: Sequence[ReviewFrame] = ()) -> ReviewSummary:
    """Write round ``round_index``'s review recording to ``path`` from its export folder;
    ``records_of(frame ids)`` gives the frames' catalog records in order; ``candidates`` are
    unbought frames to compare (:func:`unbought_candidates`)."""
    folder = Path(export_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"round {round_index} has no export at {folder}: materialize vendor_export for "
                                f"round-{round_index:04d} first")
    return write_review(review_frames(folder, records_of), round_index, path, candidates)


__all__ = ["DEFAULT_CANDIDATES", "open_command", "review_path", "reviews_folder", "unbought_candidates",
           "write_round_review"]
