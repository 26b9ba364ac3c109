"""Run configuration of the acquisition assets: everything a UI user may change.

One ``Config`` class per asset that takes parameters; every field has a default
and a description (shown in the launchpad), so "Materialize" works as is. The
run seed lives in :class:`RunSeedConfig` fields of each class that draws random
numbers; all of them default to the same value, and every derived seed is
recorded next to what it produced.
"""

from __future__ import annotations

from typing import Literal, Optional

import dagster as dg
from pydantic import Field

from ceal_pipeline.core.detection_acquisition import DetectionAcquisitionName


class DetectorConfig(dg.Config):
    """Training of the round's detector on the labeled set."""

    epochs: int = Field(default=12, description="training epochs over the labeled set")
    run_seed: int = Field(default=0, description="experiment seed; the round's training seed derives from it")
    max_eval_frames: int = Field(
        default=200, description="held-out (val split) frames used for mAP; -1 = all, 0 = skip the evaluation"
    )
    warm_start: bool = Field(default=True, description="start from the previous round's detector weights")
    fine_tune_epochs: int = Field(
        default=0, description="epochs when warm-starting from the previous round's detector; 0 = epochs"
    )


class CandidatePoolConfig(dg.Config):
    """How the round's candidate pool is drawn from the unlabeled pool (CEAL, Algorithm 1)."""

    pool_fraction: float = Field(default=0.05, description="pool size as a fraction alpha of the unlabeled pool")
    pool_count: int = Field(default=0, description="fixed pool size in frames; overrides pool_fraction when > 0")
    temperature: float = Field(
        default=0.1,
        description="softmax temperature T over normalised historical scores; ->0 top-m, ->inf uniform",
    )
    normalisation: Literal["rank", "zscore", "none"] = Field(
        default="rank", description="score normalisation before the softmax: rank, zscore, none"
    )
    prior: str = Field(
        default="optimistic",
        description="score of never-scored frames: optimistic, pessimistic, mean, or a number",
    )
    round_zero_mode: Literal["full_pool", "prior"] = Field(
        default="full_pool",
        description="round 0: 'full_pool' scores every unlabeled frame once (the paper's backfill); "
        "'prior' samples from the prior like any other round",
    )
    shard_size: int = Field(default=256, description="frames per candidate_scores shard (one GPU step each)")
    k: int = Field(
        default=50, description="frames bought from the vendor this round (recorded with the round; the "
        "sensor-launched round_selection uses it)",
    )
    per_sequence_cap: int = Field(
        default=2, description="at most this many frames bought per sequence this round; 0 = no cap (recorded)"
    )
    run_seed: int = Field(default=0, description="experiment seed; the pool's seed derives from (seed, round)")


class CandidateScoresConfig(dg.Config):
    """MC-Dropout scoring of one shard of the candidate pool."""

    mc_passes: int = Field(default=10, description="MC-Dropout passes T per frame")
    mode: Literal["head", "full"] = Field(default="head", description="'head': backbone once, dropout head T times; 'full': whole net T times")
    acquisition_fn: DetectionAcquisitionName = Field(
        default="localization_entropy",
        description="acquisition function over the MC passes: localization_entropy (CEAL's), "
        "localization_and_class_entropy, heatmap_entropy (sees frames without detections), "
        "localization_and_heatmap_entropy; recorded with every score event",
    )
    aggregate: Literal["mean", "max", "sum"] = Field(default="mean", description="per-frame aggregation of object entropies: mean, max, sum")
    batch_size: int = Field(default=8, description="frames per forward batch")
    rescore_existing: bool = Field(
        default=False,
        description="score the shard again even if the round's detector already scored it (before the merge "
        "only: a merged shard is immutable and the merge refuses different scores)",
    )
    run_seed: int = Field(default=0, description="experiment seed; dropout masks derive from (seed, round, shard)")


class PruningConfig(dg.Config):
    """Frames whose score stayed persistently low leave the unlabeled pool (reversibly)."""

    enabled: bool = Field(default=True, description="prune persistently low frames")
    last_m: int = Field(default=3, description="a frame is pruned when each of its last m scores ...")
    quantile: float = Field(default=0.2, description="... was in the bottom q quantile of its round")
    floor: Optional[float] = Field(default=None, description="optional absolute score floor (nats) instead")


class SelectionConfig(dg.Config):
    """Top-K of the freshly scored candidates. K and the cap are round parameters: set them on
    candidate_pool when the round opens; these fields only override them for one re-run."""

    k: Optional[int] = Field(default=None, description="override the round's recorded K (unset: the round's)")
    per_sequence_cap: Optional[int] = Field(
        default=None, description="override the round's recorded per-sequence cap; 0 = no cap (unset: the round's)"
    )
