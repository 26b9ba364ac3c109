"""Run configuration of the acquisition assets: everything a UI user may change.

One ``Config`` class per asset that takes parameters; every field defaults to
the project configuration (``ceal.yaml``, :mod:`ceal_pipeline.configuration`)
and has a description (shown in the launchpad), so "Materialize" works as is
and the schedule's and sensors' runs use the deployment's values.

A round's parameters (pool, temperature, K, MC passes, acquisition function,
shard size, pruning) are all fields of :class:`CandidatePoolConfig`, the step
that opens the round: they are recorded in the history when the round opens,
and every later run of that round (its shards, its selection, its export) reads
the recorded values (:func:`recorded_round_config`). So a Launchpad change to
``nightly_acquisition`` applies to the whole round it opens, and a shard run
launched by a sensor can never score with different settings than its siblings.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field

from ceal_pipeline.configuration import ProjectConfig, project_config
from ceal_pipeline.configuration.schema import Aggregate, McMode, Normalisation, RoundZeroMode
from ceal_pipeline.core.detection_acquisition import DetectionAcquisitionName
from ceal_pipeline.core.selection import SelectionMethod

_DETECTOR = project_config().detector
_ROUND = project_config().round


class DetectorConfig(dg.Config):
    """Training of the round's detector on the labeled set."""

    epochs: int = Field(default=_DETECTOR.epochs, description="training epochs over the labeled set")
    run_seed: int = Field(default=_ROUND.run_seed, description="experiment seed; the round's training seed derives from it")
    max_eval_frames: int = Field(
        default=_DETECTOR.max_eval_frames,
        description="held-out (val split) frames used for mAP; -1 = all, 0 = skip the evaluation",
    )
    warm_start: bool = Field(default=_DETECTOR.warm_start, description="start from the previous round's detector weights")
    fine_tune_epochs: int = Field(
        default=_DETECTOR.fine_tune_epochs,
        description="epochs when warm-starting from the previous round's detector; 0 = epochs",
    )


class CandidatePoolConfig(dg.Config):
    """The round's parameters, recorded when candidate_pool opens the round (CEAL, Algorithm 1)."""

    pool_fraction: float = Field(default=_ROUND.pool_fraction, description="pool size as a fraction alpha of the unlabeled pool")
    pool_count: int = Field(default=_ROUND.pool_count, description="fixed pool size in frames; overrides pool_fraction when > 0")
    temperature: float = Field(
        default=_ROUND.temperature,
        description="softmax temperature T over normalised historical scores; ->0 top-m, ->inf uniform",
    )
    normalisation: Normalisation = Field(
        default=_ROUND.normalisation, description="score normalisation before the softmax: rank, zscore, none"
    )
    prior: str = Field(
        default=str(_ROUND.prior),
        description="score of never-scored frames: optimistic, pessimistic, mean, or a number",
    )
    round_zero_mode: RoundZeroMode = Field(
        default=_ROUND.round_zero_mode,
        description="round 0: 'full_pool' scores every unlabeled frame once (the paper's backfill); "
        "'prior' samples from the prior like any other round",
    )
    shard_size: int = Field(default=_ROUND.shard_size, description="frames per candidate_scores shard (one GPU step each)")
    k: int = Field(default=_ROUND.k, description="frames bought from the vendor this round")
    per_sequence_cap: int = Field(
        default=_ROUND.per_sequence_cap, description="at most this many frames bought per sequence this round; 0 = no cap"
    )
    mc_passes: int = Field(default=_ROUND.mc_passes, description="MC-Dropout passes T per frame (every shard of the round)")
    mc_mode: McMode = Field(
        default=_ROUND.mc_mode, description="'head': backbone once, dropout head T times; 'full': whole net T times"
    )
    acquisition_fn: DetectionAcquisitionName = Field(
        default=_ROUND.acquisition_fn,
        description="acquisition function over the MC passes: localization_entropy (CEAL's), "
        "localization_and_class_entropy, heatmap_entropy (sees frames without detections), "
        "localization_and_heatmap_entropy; recorded with every score event",
    )
    aggregate: Aggregate = Field(default=_ROUND.aggregate, description="per-frame aggregation of object entropies: mean, max, sum")
    prune: bool = Field(default=_ROUND.prune, description="prune frames whose score stayed persistently low")
    prune_last_m: int = Field(default=_ROUND.prune_last_m, description="a frame is pruned when each of its last m scores ...")
    prune_quantile: float = Field(default=_ROUND.prune_quantile, description="... was in the bottom q quantile of its round")
    prune_floor: Optional[float] = Field(default=_ROUND.prune_floor, description="optional absolute score floor (nats) instead")
    run_seed: int = Field(default=_ROUND.run_seed, description="experiment seed; the pool's seed derives from (seed, round)")
    # round.selection and round.budget of ceal.yaml, flattened (a round records flat parameters).
    selection_method: SelectionMethod = Field(
        default=_ROUND.selection.method,
        description="selection after scoring: topk, class_balance, diversity, class_balance_diversity",
    )
    diversity_weight: float = Field(
        default=_ROUND.selection.diversity_weight, ge=0.0, le=1.0,
        description="diversity methods: share of distance-to-batch in the objective; 0 = topk, 1 = k-center",
    )
    class_balance_strength: float = Field(
        default=_ROUND.selection.class_balance_strength, ge=0.0,
        description="class balance methods: exponent on each class's need; 0 = topk",
    )
    budget_amount: Optional[float] = Field(
        default=_ROUND.budget.amount, ge=0.0,
        description="money this round may spend on labels (instead of K); unset: K frames",
    )
    price_per_frame: float = Field(default=_ROUND.budget.price_per_frame, ge=0.0, description="vendor price per frame")
    price_per_cuboid: float = Field(
        default=_ROUND.budget.price_per_cuboid, ge=0.0,
        description="vendor price per 3D box (a frame's boxes estimated by its detections)",
    )


def flat_round_parameters(parameters) -> dict:
    """:class:`CandidatePoolConfig` fields from a ``RoundSection`` (``round.selection`` and
    ``round.budget`` flattened)."""
    flat = parameters.model_dump(exclude={"selection", "budget"})
    flat.update(selection_method=parameters.selection.method, diversity_weight=parameters.selection.diversity_weight,
                class_balance_strength=parameters.selection.class_balance_strength,
                budget_amount=parameters.budget.amount, price_per_frame=parameters.budget.price_per_frame,
                price_per_cuboid=parameters.budget.price_per_cuboid)
    return flat


def recorded_round_config(recorded: dict) -> CandidatePoolConfig:
    """The parameters a round was opened with; keys a round opened by an older version did
    not record take the current defaults."""
    known = CandidatePoolConfig.model_fields
    return CandidatePoolConfig(**{key: value for key, value in recorded.items() if key in known})


class CandidateScoresConfig(dg.Config):
    """Execution of one shard's scoring. What is computed (MC passes, acquisition function,
    aggregation, seed) is the round's, recorded when it opened."""

    batch_size: int = Field(default=_DETECTOR.scoring_batch_size, description="frames per forward batch")
    rescore_existing: bool = Field(
        default=False,
        description="score the shard again even if the round's detector already scored it (before the merge "
        "only: a merged shard is immutable and the merge refuses different scores)",
    )


class SelectionConfig(dg.Config):
    """Top-K of the freshly scored candidates. K and the cap are round parameters: set them on
    candidate_pool when the round opens; these fields only override them for one re-run."""

    k: Optional[int] = Field(default=None, description="override the round's recorded K (unset: the round's)")
    per_sequence_cap: Optional[int] = Field(
        default=None, description="override the round's recorded per-sequence cap; 0 = no cap (unset: the round's)"
    )


def run_configs_for(project: ProjectConfig) -> dict[str, dg.Config]:
    """The per-asset run configuration of a deployment configured by ``project`` (equal to the
    classes' defaults when ``project`` is this process's configuration; ``ceal demo`` uses it
    for the configuration it writes)."""
    detector, parameters = project.detector, project.round
    return {
        "detector": DetectorConfig(
            epochs=detector.epochs, run_seed=parameters.run_seed, max_eval_frames=detector.max_eval_frames,
            warm_start=detector.warm_start, fine_tune_epochs=detector.fine_tune_epochs,
        ),
        "candidate_pool": CandidatePoolConfig(**{**flat_round_parameters(parameters), "prior": str(parameters.prior)}),
        "candidate_scores": CandidateScoresConfig(batch_size=detector.scoring_batch_size),
    }
