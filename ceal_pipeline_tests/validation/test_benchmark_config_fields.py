"""The benchmarks' Launchpad overrides are protocol fields: same names and types, nothing the protocol lacks."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ceal_pipeline.defs.validation.config import BenchmarkConfig, DetectionBenchmarkConfig
from ceal_pipeline.validation.detection.protocol import DetectionProtocolConfig
from ceal_pipeline.validation.protocol import ProtocolConfig


def _overridable(config_class) -> dict[str, type]:
    """The config's optional protocol overrides: name -> the type it carries."""
    found = {}
    for name, field in config_class.model_fields.items():
        args = typing.get_args(field.annotation)
        if field.default is None and type(None) in args:
            found[name] = next(a for a in args if a is not type(None))
    return found


@pytest.mark.parametrize("config_class, protocol", [(BenchmarkConfig, ProtocolConfig),
                                                     (DetectionBenchmarkConfig, DetectionProtocolConfig)])
def test_every_override_is_a_protocol_field_of_the_same_type_and_reaches_the_protocol(config_class, protocol):
    overridable = _overridable(config_class)
    protocol_fields = {f.name: f for f in dataclasses.fields(protocol)}
    assert overridable and set(overridable) <= set(protocol_fields)
    for name, kind in overridable.items():
        default = protocol_fields[name].default
        assert isinstance(default, kind) or default is None, f"{name}: {kind} vs {default!r}"
    values = {name: (True if kind is bool else 1 if kind is int else 0.5) for name, kind in overridable.items()}
    assert config_class(**values).overrides() == values  # every override is passed on, none dropped
