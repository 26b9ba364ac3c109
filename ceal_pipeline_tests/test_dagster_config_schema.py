"""The Launchpad's run config and the resources describe ceal.yaml's fields, not a second copy of them."""

from __future__ import annotations

import enum
import typing
from typing import Literal, Optional

import pydantic
import pytest

from ceal_pipeline.configuration import load_project_config
from ceal_pipeline.configuration.schema import DetectorSection, RoundSection, SourceSection, StorageSection
from ceal_pipeline.defs.acquisition.config import (
    CandidatePoolConfig,
    CandidateScoresConfig,
    DetectorConfig,
    SelectionConfig,
    opened_round,
    round_parameters,
    run_configs_for,
)
from ceal_pipeline.defs.config_fields import bounds, config_fields, dagster_class, dagster_type
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    RoundParameters,
    VendorExporterResource,
    resources_for,
    run_defaults_for,
)

#: (Dagster class, its field) -> (schema section, its field): every field ceal.yaml also configures.
SCHEMA_OF = {
    **{(CandidatePoolConfig, name): (RoundSection, name) for name in RoundSection.model_fields},
    **{(RoundParameters, name): (RoundSection, name) for name in RoundSection.model_fields},
    **{(DetectorConfig, name): (DetectorSection, name)
       for name in ("epochs", "fine_tune_epochs", "warm_start", "max_eval_frames")},
    (DetectorConfig, "run_seed"): (RoundSection, "run_seed"),
    (CandidateScoresConfig, "batch_size"): (DetectorSection, "scoring_batch_size"),
    (SelectionConfig, "k"): (RoundSection, "k"),
    (SelectionConfig, "per_sequence_cap"): (RoundSection, "per_sequence_cap"),
    (AcquisitionHistoryResource, "path"): (StorageSection, "history"),
    (AcquisitionHistoryResource, "shard_dir"): (StorageSection, "shards"),
    (ModelStoreResource, "model_dir"): (StorageSection, "models"),
    (ModelStoreResource, "detector_config"): (DetectorSection, "config"),
    (ModelStoreResource, "device"): (DetectorSection, "device"),
    (ModelStoreResource, "loader_workers"): (DetectorSection, "loader_workers"),
    (FrameSourceResource, "kind"): (SourceSection, "kind"),
    (FrameSourceResource, "catalog_dir"): (StorageSection, "catalog"),
    (FrameSourceResource, "synthetic_frames"): (SourceSection, "synthetic_frames"),
    (FrameSourceResource, "synthetic_seed"): (SourceSection, "synthetic_seed"),
    (FrameSourceResource, "label_mode"): (SourceSection, "label_mode"),
    (FrameSourceResource, "seed_labeled"): (SourceSection, "seed_labeled"),
    (VendorExporterResource, "outbox"): (StorageSection, "outbox"),
    (VendorExporterResource, "inbox"): (StorageSection, "inbox"),
    (VendorExporterResource, "uri_base"): (SourceSection, "uri_base"),
}


def _without_none(annotation):
    """``X`` of ``Optional[X]`` (an enum or a ``Literal`` as its values, a nested section as its
    fields' names and types); anything else as it is."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = args[0] if type(None) in typing.get_args(annotation) and len(args) == 1 else annotation
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        return tuple((name, _without_none(field.annotation)) for name, field in kind.model_fields.items())
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return tuple(member.value for member in kind)
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else kind


@pytest.mark.parametrize("ours, theirs", list(SCHEMA_OF.items()), ids=lambda p: f"{p[0].__name__}.{p[1]}")
def test_every_configured_field_has_the_schemas_description_and_bounds(ours, theirs):
    owner, name = ours
    section, field = theirs
    mine, schema = owner.model_fields[name], section.model_fields[field]
    assert mine.description.startswith(schema.description)
    assert bounds(mine) == bounds(schema)


@pytest.mark.parametrize("owner", [CandidatePoolConfig, RoundParameters])
def test_the_round_config_has_every_round_field_with_the_schemas_type(owner):
    assert set(owner.model_fields) == set(RoundSection.model_fields)
    for name, schema in RoundSection.model_fields.items():
        expected = dagster_type(schema.annotation, name)
        assert _without_none(owner.model_fields[name].annotation) == _without_none(expected), name


def test_a_field_added_to_the_round_section_reaches_the_launchpad_without_a_second_edit():
    class WiderRound(RoundSection):
        budget: Optional[float] = pydantic.Field(default=None, ge=0.0, description="money per round")
        order: Literal["score", "diverse"] = pydantic.Field(description="how the batch is chosen")

    launchpad = dagster_class("WiderPool", config_fields(WiderRound, optional=True, where="round."), doc="test")
    assert launchpad.model_fields["budget"].description == "money per round (unset: round.budget)"
    choices = typing.get_args(launchpad.model_fields["order"].annotation)[0]
    assert [c.value for c in choices] == ["score", "diverse"]
    assert launchpad().order is None and launchpad(order="diverse").order.value == "diverse"
    with pytest.raises(pydantic.ValidationError):
        launchpad(order="greedy")
    with pytest.raises(pydantic.ValidationError):
        launchpad(budget=-1.0)


def test_a_schema_type_without_a_dagster_type_is_named():
    with pytest.raises(TypeError, match="has no Dagster config type"):
        dagster_type(dict[str, int], "round.weights")


def test_the_launchpad_refuses_what_ceal_yaml_refuses():
    with pytest.raises(pydantic.ValidationError):
        CandidatePoolConfig(k=0)
    with pytest.raises(pydantic.ValidationError):
        SelectionConfig(k=0)
    with pytest.raises(pydantic.ValidationError):
        CandidatePoolConfig(normalisation="softmax")


def test_an_unset_field_is_the_deployments_value_and_a_set_one_overrides_it(tmp_path):
    project = load_project_config(environ={"CEAL_HOME": str(tmp_path)})
    defaults = run_defaults_for(project)
    assert round_parameters(CandidatePoolConfig(), defaults) == project.round
    assert round_parameters(CandidatePoolConfig(k=3, prior="0.25"), defaults) == project.round.model_copy(
        update={"k": 3, "prior": 0.25})
    assert opened_round({"k": 7, "unlabeled_frames": 90}, defaults) == project.round.model_copy(update={"k": 7})
    with pytest.raises(pydantic.ValidationError, match="prior"):
        round_parameters(CandidatePoolConfig(prior="hopeful"), defaults)


def test_the_resources_carry_the_deployments_configuration(tmp_path):
    path = tmp_path / "ceal.yaml"
    path.write_text("preset: cpu-small\nsource: {uri_base: 's3://bucket/data'}\nround: {k: 9}\n")
    project = load_project_config(path, environ={})
    resources = resources_for(project)
    for (owner, name), (section, field) in SCHEMA_OF.items():
        resource = next((r for r in resources.values() if type(r) is owner), None)
        if resource is not None:
            expected = getattr(getattr(project, section.__name__.removesuffix("Section").lower()), field)
            assert getattr(resource, name) == expected, f"{owner.__name__}.{name}"
    assert resources["run_defaults"].round.k == 9
    assert round_parameters(run_configs_for(project)["candidate_pool"], resources["run_defaults"]) == project.round


def test_no_module_reads_the_project_configuration_when_it_is_imported(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import ceal_pipeline.configuration, ceal_pipeline.defs, ceal_pipeline.defs.resources, "
             "ceal_pipeline.defs.acquisition.config, ceal_pipeline.defs.acquisition.schedules; print('imported')")
    env = {**os.environ, "CEAL_CONFIG": str(tmp_path / "missing.yaml"), "CEAL_HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip() == "imported", done.stderr[-2000:]


def test_the_nightly_cron_is_read_when_the_definitions_are_built(tmp_path):
    from ceal_pipeline.defs import build_defs

    project = load_project_config(environ={"CEAL_HOME": str(tmp_path)})
    defs = build_defs(resources_for(project), with_validation=False, environ={"CEAL_NIGHTLY_CRON": "*/5 * * * *"})
    assert [s.cron_schedule for s in defs.schedules] == ["*/5 * * * *"]
    assert [s.cron_schedule for s in build_defs(resources_for(project), with_validation=False, environ={}).schedules] \
        == ["0 2 * * *"]


def test_a_nested_section_added_to_the_round_is_a_nested_launchpad_config_dagster_accepts():
    import dagster as dg

    class Budget(pydantic.BaseModel):
        """Money per round."""

        currency: Literal["EUR", "USD"] = pydantic.Field(description="currency of the amounts")
        per_frame: float = pydantic.Field(gt=0.0, description="price of one frame")

    class RoundWithBudget(RoundSection):
        budget: Optional[Budget] = pydantic.Field(default=None, description="buy under a budget instead of K")

    launchpad = dagster_class("PoolWithBudget", config_fields(RoundWithBudget, optional=True, where="round."),
                              doc="test")
    resource_side = dagster_class("RoundWithBudgetParameters", config_fields(RoundWithBudget, optional=False),
                                  doc="test")

    def body(config) -> None:
        return None

    body.__annotations__ = {"config": launchpad, "return": None}  # this module's annotations are strings
    opens_a_round = dg.asset(name="opens_a_round")(body)  # Dagster infers its config schema here

    chosen = launchpad(budget={"currency": "EUR", "per_frame": 2.5})
    assert chosen.budget.per_frame == 2.5 and launchpad().budget is None
    with pytest.raises(pydantic.ValidationError):
        launchpad(budget={"currency": "EUR", "per_frame": 0.0})
    assert resource_side.model_fields["budget"].default is None
    assert opens_a_round.op.config_schema is not None
