"""Every asset of one CEAL acquisition round, in data-flow order."""

from ceal_pipeline.defs.acquisition.round_opening import (
    acquisition_history,
    candidate_pool,
    detector,
    frame_catalog,
    labeled_set,
)
from ceal_pipeline.defs.acquisition.round_selection import pruned_frames, selected_batch, vendor_export
from ceal_pipeline.defs.acquisition.shard_scoring import candidate_scores, merged_scores

#: The round opens (train, draw the pool) ...
opening_assets = [frame_catalog, acquisition_history, labeled_set, detector, candidate_pool]
#: ... its shards are scored on GPUs, one partition each ...
scoring_assets = [candidate_scores]
#: ... and it closes once every shard is in (merge, prune, select, export).
closing_assets = [merged_scores, pruned_frames, selected_batch, vendor_export]

acquisition_assets = [*opening_assets, *scoring_assets, *closing_assets]
