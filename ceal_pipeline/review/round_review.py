"""A round's review, from its export folder to its recording: the one call the CLI and the
``round_review`` asset share."""

from __future__ import annotations

from pathlib import Path

from ceal_pipeline.review.recording import ReviewSummary, review_path, write_review
from ceal_pipeline.review.scene import review_frames


def reviews_folder(home: str | Path) -> Path:
    """The folder of review recordings of a deployment whose storage home is ``home``."""
    return Path(home) / "reviews"


def open_command(path: str | Path, round_index: int) -> str:
    """How a person opens the recording: ``ceal review`` (writes it first when missing) or Rerun's viewer."""
    return f"ceal review --round {round_index} --open   (or: rerun {path})"


def write_round_review(round_index: int, export_folder: str | Path, records_of,
                       path: str | Path) -> ReviewSummary:
    """Write round ``round_index``'s review recording to ``path`` from its export folder;
    ``records_of(frame ids)`` gives the frames' catalog records in order."""
    folder = Path(export_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"round {round_index} has no export at {folder}: materialize vendor_export for "
                                f"round-{round_index:04d} first")
    return write_review(review_frames(folder, records_of), round_index, path)


__all__ = ["open_command", "review_path", "reviews_folder", "write_round_review"]
