"""``ceal.yaml`` is read strictly: nothing YAML or pydantic would quietly reinterpret gets through,
and everything a valid file says still does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceal_pipeline.configuration import ProjectConfigError, load_project_config
from ceal_pipeline.configuration.strict_yaml import MAX_DEPTH, value_problem


def _load(tmp_path, text: str):
    path = tmp_path / "ceal.yaml"
    path.write_text(text)
    return load_project_config(path, environ={"CEAL_HOME": str(tmp_path)})


def test_booleans_where_the_schema_has_booleans_and_numbers_where_it_has_numbers_are_read(tmp_path):
    config = _load(tmp_path, "preset: cpu-small\ndetector:\n  warm_start: false\nround:\n  prune: true\n  k: 12\n"
                             "  temperature: 0.25\n  prior: 0.5\n")
    assert (config.detector.warm_start, config.round.prune, config.round.k) == (False, True, 12)
    assert (config.round.temperature, config.round.prior) == (0.25, 0.5)


@pytest.mark.parametrize("key", ["k", "shard_size", "mc_passes", "pool_count", "temperature", "pool_fraction"])
@pytest.mark.parametrize("value", ["true", "false", "yes", "on"])
def test_a_boolean_is_not_a_number(tmp_path, key, value):
    with pytest.raises(ProjectConfigError, match=f"round.{key}: .* is a boolean"):
        _load(tmp_path, f"round:\n  {key}: {value}\n")


@given(st.sampled_from(["k", "temperature", "shard_size"]), st.sampled_from(["round", "detector"]))
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path_factory, key, section):
    folder = tmp_path_factory.mktemp("twice")
    with pytest.raises(ProjectConfigError, match=f"the key '{key}' is given twice \\(lines 2 and 3\\)"):
        _load(folder, f"{section}:\n  {key}: 1\n  {key}: 2\n")


def test_nesting_at_the_bound_is_parsed_and_one_more_level_is_refused(tmp_path):
    # the bound counts YAML nodes: the document mapping, "round", then the nested lists
    with pytest.raises(ProjectConfigError, match="is not valid|must be a mapping"):
        _load(tmp_path, "round: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n")
    with pytest.raises(ProjectConfigError, match="nested more than"):
        _load(tmp_path, "round: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")


@pytest.mark.parametrize("value, problem", [
    (float("inf"), "not a finite number"), (float("nan"), "not a finite number"), (2**31, "out of range"),
    (-(2**31) - 1, "out of range"), ("a\x00b", "NUL byte"), (["ok", "a\x00b"], "NUL byte"),
])
def test_values_out_of_bounds_are_named(value, problem):
    assert problem in value_problem(value, int)


@pytest.mark.parametrize("value", [0, 2**31 - 1, 1.5, "cuda:0", ["a.pkl"]])
def test_values_within_bounds_pass(value):
    assert value_problem(value, int) is None
