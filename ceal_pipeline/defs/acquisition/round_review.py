"""``round_review``: the round's bought frames in 3D, a Rerun recording beside its export.

The review (:mod:`ceal_pipeline.review`) is for the team, not the vendor: it is
written to ``exporter.reviews/round-NNNN.rrd`` (default ``<storage.home>/reviews``),
not into the drop the vendor syncs. It reads only the verified export and the
catalog, so it can be rematerialized for any exported round; its failure never
touches the export or the round's closure (which ``vendor_export`` decides).
"""

import dagster as dg

from ceal_pipeline.defs.acquisition.failures import permanent_failure
from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, parse_round_partition_key
from ceal_pipeline.defs.acquisition.round_selection import GROUP, vendor_export
from ceal_pipeline.defs.resources import AcquisitionHistoryResource, FrameSourceResource, VendorExporterResource
from ceal_pipeline.review.round_review import open_command, review_path, unbought_candidates, write_round_review


@dg.asset(
    deps=[vendor_export],
    partitions_def=acquisition_rounds,
    group_name=GROUP,
    kinds={"rerun"},
    description="The round's bought frames in 3D, in rank order, as a Rerun recording (.rrd, written headless): "
    "LiDAR points coloured by height, the pre-labels sent to the vendor with class and score, the most "
    "uncertain objects' MC-mean boxes and spread, each camera image with the boxes projected, the ego pose, "
    "and each frame's rank, score and explanation; beside them, to compare, the best-scoring candidates that "
    "were not bought. The metadata gives the file and the command to open it.",
)
def round_review(context: dg.AssetExecutionContext, history: AcquisitionHistoryResource,
                 frame_source: FrameSourceResource, exporter: VendorExporterResource) -> dg.MaterializeResult:
    round_index = parse_round_partition_key(context.partition_key)
    export = exporter.exported(round_index)  # verifies the drop's checksums
    if export is None:
        raise permanent_failure(f"round {round_index} has no export in {exporter.outbox}; materialize vendor_export "
                                f"for partition {context.partition_key} first")
    path = review_path(exporter.reviews_folder(), round_index)
    catalog = frame_source.catalog()
    scores = history.open().round_scores(round_index)
    candidates = unbought_candidates(scores.frame_ids, scores.scores, export.frame_ids, exporter.review_candidates,
                                     catalog.records, lambda ids: history.exchange().explanations(round_index, ids))
    summary = write_round_review(round_index, export.folder, catalog.records, path, candidates)
    context.log.info(f"round {round_index}: 3D review of {summary.frames} frames in {path} "
                     f"({summary.bytes_per_frame / 1e6:.1f} MB, {summary.seconds_per_frame:.2f} s per frame)")
    return dg.MaterializeResult(metadata={
        "round": round_index,
        "path": dg.MetadataValue.path(str(path)),
        "open_command": dg.MetadataValue.text(open_command(path, round_index)),
        "frames": summary.frames,
        "points": summary.points,
        "pre_label_boxes": summary.pre_label_boxes,
        "uncertain_boxes": summary.uncertain_boxes,
        "camera_images": summary.camera_images,
        "unbought_candidates": dg.MetadataValue.json([{"frame_id": c.frame_id, "score_nats": c.score}
                                                      for c in candidates]),
        "seconds_per_frame": round(summary.seconds_per_frame, 3),
        "mb_per_frame": round(summary.bytes_per_frame / 1e6, 2),
    })
