"""The round's 3D review, written beside its export and shown in ``vendor_export``'s metadata.

The review (:mod:`ceal_pipeline.review`) is a view of what the round bought: a
failure to write it is logged as a warning and reported in the metadata, never
a failed export (the drop is what the vendor needs)."""

from __future__ import annotations

import dagster as dg

from ceal_pipeline.review.round_review import open_command, review_path, write_round_review


def review_metadata(context, exporter, round_index: int, export_folder, catalog) -> dict:
    """Write round ``round_index``'s review once (when the exporter has ``review`` on) and return
    the metadata entries: its path, the command to open it, and its cost per frame when written now."""
    if not exporter.review:
        return {}
    path = review_path(exporter.reviews, round_index)
    entries: dict = {"review": dg.MetadataValue.path(str(path)),
                     "review_command": dg.MetadataValue.text(open_command(path, round_index))}
    if path.is_file():
        return entries
    try:
        summary = write_round_review(round_index, export_folder, catalog.records, path)
    except Exception as exc:  # noqa: BLE001 - a view of the round must not fail its export
        context.log.warning(f"round {round_index}: the 3D review was not written ({type(exc).__name__}: {exc}); "
                            f"`ceal review --round {round_index}` retries it")
        return {"review": dg.MetadataValue.text(f"not written: {type(exc).__name__}: {exc}")}
    context.log.info(f"round {round_index}: 3D review of {summary.frames} frames in {path} "
                     f"({summary.bytes_per_frame / 1e6:.1f} MB, {summary.seconds_per_frame:.2f} s per frame)")
    entries["review_seconds_per_frame"] = round(summary.seconds_per_frame, 3)
    entries["review_mb_per_frame"] = round(summary.bytes_per_frame / 1e6, 2)
    return entries
