"""Run configuration of the acquisition assets: what a Launchpad run may override.

Every field is made from the ``ceal.yaml`` schema (:mod:`ceal_pipeline.configuration.schema`,
through :mod:`ceal_pipeline.defs.config_fields`): the same name, type, bounds and
description, defined once. A field left unset (None, the default, so "Materialize"
works as is) takes the deployment's value, which the resource
:class:`~ceal_pipeline.defs.resources.RunDefaultsResource` carries (built from the
deployment's ``ceal.yaml`` by :func:`ceal_pipeline.defs.resources.resources_for`):
nothing here reads the project configuration.

A round's parameters are :class:`CandidatePoolConfig`, the step that opens the
round: resolved (:func:`round_parameters`), recorded in the history when the
round opens, and read back by every later run of that round (its shards, its
selection, its export: :func:`opened_round`). So a Launchpad change to
``nightly_acquisition`` applies to the whole round it opens, and a shard run
launched by a sensor can never score with different settings than its siblings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from ceal_pipeline.configuration import ProjectConfig
from ceal_pipeline.configuration.schema import DetectorSection, RoundSection
from ceal_pipeline.defs.config_fields import config_fields, dagster_class, plain

if TYPE_CHECKING:
    from ceal_pipeline.defs.resources import RunDefaultsResource

#: The detector section's fields a training run uses (the others configure the model store).
TRAINING_FIELDS = ("epochs", "fine_tune_epochs", "warm_start", "max_eval_frames", "scoring_batch_size")


DetectorConfig = dagster_class(
    "DetectorConfig",
    {
        **config_fields(DetectorSection, {f: f for f in TRAINING_FIELDS if f != "scoring_batch_size"},
                        optional=True, where="ceal.yaml detector."),
        **config_fields(RoundSection, {"run_seed": "run_seed"}, optional=True, where="ceal.yaml round."),
    },
    doc="Training of the round's detector on the labeled set.", module=__name__,
)

CandidatePoolConfig = dagster_class(
    "CandidatePoolConfig", config_fields(RoundSection, optional=True, where="ceal.yaml round."),
    doc="The round's parameters, recorded when candidate_pool opens the round (CEAL, Algorithm 1).", module=__name__,
)

CandidateScoresConfig = dagster_class(
    "CandidateScoresConfig",
    {
        **config_fields(DetectorSection, {"batch_size": "scoring_batch_size"}, optional=True,
                        where="ceal.yaml detector."),
        "rescore_existing": (bool, Field(
            default=False,
            description="score the shard again even if the round's detector already scored it (before the merge "
            "only: a merged shard is immutable and the merge refuses different scores)",
        )),
    },
    doc="Execution of one shard's scoring. What is computed (MC passes, acquisition function, aggregation, "
    "seed) is the round's, recorded when it opened.", module=__name__,
)

def _resolved(config: dg.Config, deployment: Mapping[str, Any]) -> dict[str, Any]:
    """``config``'s values, the deployment's where ``config`` leaves a field unset (None)."""
    return {name: deployment[name] if value is None else value for name, value in plain(config.model_dump()).items()}


def round_parameters(config: dg.Config, defaults: RunDefaultsResource) -> RoundSection:
    """The parameters a round opens with: ``config`` (a :data:`CandidatePoolConfig`) over the
    deployment's, checked by the schema (bounds, the prior's name or number)."""
    return RoundSection.model_validate(_resolved(config, defaults.round.model_dump()))


def as_recorded(parameters: RoundSection) -> dict[str, Any]:
    """A round's parameters as the history records them (the prior as written: a name or a number's text)."""
    return {**parameters.model_dump(), "prior": str(parameters.prior)}


def opened_round(recorded_parameters: Mapping[str, Any], defaults: RunDefaultsResource) -> RoundSection:
    """The parameters a round was opened with; keys a round opened by an older version did
    not record take the deployment's values."""
    known = {k: v for k, v in recorded_parameters.items() if k in RoundSection.model_fields}
    return RoundSection.model_validate({**defaults.round.model_dump(), **known})


def detector_training(config: dg.Config, defaults: RunDefaultsResource) -> dg.Config:
    """A :data:`DetectorConfig` with every field set: ``config``'s, else the deployment's."""
    deployment = {**defaults.training.model_dump(), "run_seed": defaults.round.run_seed}
    return DetectorConfig(**_resolved(config, deployment))


def scoring_batch_size(config: dg.Config, defaults: RunDefaultsResource) -> int:
    return config.batch_size if config.batch_size is not None else defaults.training.scoring_batch_size


class SelectionConfig(dg.Config):
    """Top-K of the freshly scored candidates. K and the cap are round parameters: set them on
    candidate_pool when the round opens; these fields only override them for one re-run."""

    # Plain numbers with "the round's" sentinels, not Optional[None]: the Launchpad's default config
    # leaves out fields whose default is null, so these would not show there at all.
    k: int = Field(default=0, ge=0, description="frames to buy in this re-run; 0 = the round's recorded K")
    per_sequence_cap: int = Field(
        default=-1, ge=-1,
        description="at most this many per sequence in this re-run; -1 = the round's recorded cap, 0 = no cap",
    )


def run_configs_for(project: ProjectConfig) -> dict[str, dg.Config]:
    """The per-asset run configuration of a deployment configured by ``project``, every field set
    (``ceal demo`` and ``ceal round`` pass it; equal to what unset fields resolve to)."""
    detector = project.detector
    return {
        "detector": DetectorConfig(**{f: getattr(detector, f) for f in DetectorConfig.model_fields if f != "run_seed"},
                                   run_seed=project.round.run_seed),
        "candidate_pool": CandidatePoolConfig(**as_recorded(project.round)),
        "candidate_scores": CandidateScoresConfig(batch_size=detector.scoring_batch_size),
    }


__all__ = [
    "CandidatePoolConfig", "CandidateScoresConfig", "DetectorConfig", "SelectionConfig", "TRAINING_FIELDS",
    "as_recorded", "detector_training", "opened_round", "round_parameters", "run_configs_for", "scoring_batch_size",
]
