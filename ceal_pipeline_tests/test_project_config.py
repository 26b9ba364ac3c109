"""The project configuration: one ceal.yaml, found the documented way, validated with the fix in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ceal_pipeline.configuration import (
    PRESETS,
    ProjectConfigError,
    config_path,
    load_project_config,
)


def write(path: Path, content: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_without_a_file_the_gpu_preset_applies_with_storage_under_ceal_home(tmp_path):
    config = load_project_config(environ={"CEAL_HOME": str(tmp_path)})
    assert config.preset == "gpu"
    assert (config.detector.config, config.round.round_zero_mode, config.round.shard_size) == (
        "bevfusion_lite", "full_pool", 256)
    assert config.storage.history == str(tmp_path / "history.duckdb")
    assert config.source.root == str(tmp_path / "data" / "synthetic")


def test_the_file_is_ceal_config_else_ceal_home_ceal_yaml(tmp_path):
    home_file = write(tmp_path / "home" / "ceal.yaml", {"preset": "cpu-small"})
    other = write(tmp_path / "etc" / "other.yaml", {"preset": "gpu"})
    assert config_path({"CEAL_HOME": str(tmp_path / "home")}) == home_file
    assert config_path({"CEAL_HOME": str(tmp_path / "home"), "CEAL_CONFIG": str(other)}) == other
    assert config_path({"CEAL_HOME": str(tmp_path / "empty")}) is None


def test_a_missing_ceal_config_file_is_an_error_that_says_how_to_write_one(tmp_path):
    with pytest.raises(ProjectConfigError, match=r"CEAL_CONFIG=.*nope.yaml: no such file; write one with `ceal init"):
        config_path({"CEAL_CONFIG": str(tmp_path / "nope.yaml")})


def test_cpu_small_is_what_the_demo_runs_and_the_file_amends_it(tmp_path):
    path = write(tmp_path / "ceal.yaml", {"preset": "cpu-small", "round": {"k": 12, "mc_passes": 4}})
    config = load_project_config(path, environ={})
    assert (config.detector.config, config.detector.device, config.source.synthetic_frames) == (
        "bevfusion_tiny", "cpu", 600)
    assert (config.round.k, config.round.mc_passes, config.round.shard_size) == (12, 4, 16)
    assert set(PRESETS) == {"cpu-small", "gpu"}


def test_both_presets_ship_the_selection_the_detection_benchmark_chose_and_the_file_amends_it_key_by_key(tmp_path):
    for preset in PRESETS:
        config = load_project_config(write(tmp_path / preset / "ceal.yaml", {"preset": preset}), environ={})
        assert (config.round.acquisition_fn, config.round.selection.method) == ("heatmap_entropy", "diversity")
    path = write(tmp_path / "ceal.yaml", {"preset": "cpu-small", "round": {"selection": {"diversity_weight": 0.2}}})
    selection = load_project_config(path, environ={}).round.selection
    assert (selection.method, selection.diversity_weight) == ("diversity", 0.2)  # the preset's method stays
    path = write(tmp_path / "ceal.yaml", {"preset": "gpu", "round": {"selection": {"method": "topk"}}})
    assert load_project_config(path, environ={}).round.selection.method == "topk"


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path):
    path = write(tmp_path / "deploy" / "ceal.yaml", {
        "source": {"kind": "aimotive", "root": "../data/aimotive"}, "storage": {"home": "state", "outbox": "/drop"}})
    config = load_project_config(path, environ={})
    assert config.source.root == str(tmp_path / "data" / "aimotive")
    assert config.storage.catalog == str(tmp_path / "deploy" / "state" / "catalog")
    assert config.storage.outbox == "/drop"


def test_variables_amend_the_file(tmp_path):
    path = write(tmp_path / "ceal.yaml", {"preset": "cpu-small", "detector": {"config": "bevfusion_tiny"}})
    config = load_project_config(path, environ={
        "CEAL_DETECTOR_CONFIG": "bevfusion_lite", "CEAL_SYNTHETIC_FRAMES": "160", "CEAL_HOME": str(tmp_path / "h"),
        "CEAL_SOURCE_KIND": "mmdet3d", "CEAL_DATA_ROOT": str(tmp_path / "nus"), "CEAL_SOURCE_INFO": "a.pkl, b.pkl"})
    assert (config.detector.config, config.source.synthetic_frames, config.source.info) == (
        "bevfusion_lite", 160, ["a.pkl", "b.pkl"])
    assert config.storage.history == str(tmp_path / "h" / "history.duckdb")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"round": {"temperature": -1}}, r"round\.temperature: Input should be greater than 0 \(got -1"),
        ({"round": {"normalisation": "softmax"}}, r"round\.normalisation: Input should be 'rank', 'zscore' or 'none'"),
        ({"round": {"tempreature": 0.5}}, r"round\.tempreature: unknown key in .*ceal.yaml; the keys there are k, "),
        ({"rounds": {"k": 5}}, r"rounds: unknown key in .*; the keys there are preset, source, storage, detector, round, export"),
        ({"preset": "laptop"}, r"preset: 'laptop' is not a preset; use one of gpu, cpu-small"),
        ({"detector": {"device": "gpu0"}}, r"detector\.device: Value error, 'gpu0' is not a device: use auto, cpu"),
        ({"source": {"kind": "aimotive"}}, r"source\.root: a aimotive source needs its dataset folder; set source\.root"),
        ({"source": {"kind": "nuscenes"}}, r"source\.kind: Input should be 'synthetic', 'mmdet3d' or 'aimotive'"),
        ("round: [1, 2", r"ceal.yaml: not valid YAML"),
        ("- a\n- b\n", r"the top level must be a mapping"),
    ],
)
def test_a_bad_file_names_the_file_the_key_and_what_is_allowed(tmp_path, content, message):
    path = write(tmp_path / "ceal.yaml", content)
    with pytest.raises(ProjectConfigError, match=message) as raised:
        load_project_config(path, environ={})
    assert str(path) in str(raised.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path / "ceal.yaml", {"round": {"k": 0, "pool_fraction": 2.0}})
    with pytest.raises(ProjectConfigError) as raised:
        load_project_config(path, environ={})
    assert "round.k: Input should be greater than or equal to 1" in str(raised.value)
    assert "round.pool_fraction: Input should be less than or equal to 1" in str(raised.value)


def test_a_bad_variable_is_named_as_the_variable(tmp_path):
    with pytest.raises(ProjectConfigError, match=r"source\.label_mode: .* \(got 'vendor', from CEAL_LABEL_MODE='vendor'\)"):
        load_project_config(environ={"CEAL_HOME": str(tmp_path), "CEAL_LABEL_MODE": "vendor"})
    with pytest.raises(ProjectConfigError, match=r"source\.synthetic_frames: .*from CEAL_SYNTHETIC_FRAMES='600 frames'"):
        load_project_config(environ={"CEAL_HOME": str(tmp_path), "CEAL_SYNTHETIC_FRAMES": "600 frames"})


def test_the_run_config_defaults_of_a_deployment_are_its_configuration(tmp_path):
    from ceal_pipeline.defs.acquisition.config import run_configs_for
    from ceal_pipeline.defs.resources import resources_for

    path = write(tmp_path / "ceal.yaml", {"preset": "cpu-small", "round": {"k": 9, "acquisition_fn": "heatmap_entropy"},
                                          "source": {"kind": "aimotive", "root": "data"}})
    project = load_project_config(path, environ={})
    configs, resources = run_configs_for(project), resources_for(project)
    assert (configs["candidate_pool"].k, configs["candidate_pool"].acquisition_fn) == (9, "heatmap_entropy")
    assert configs["detector"].epochs == 8
    assert (resources["frame_source"].kind, resources["frame_source"].root) == ("aimotive", str(tmp_path / "data"))
    assert resources["model_store"].detector_config == "bevfusion_tiny"


def _ceal(args: list[str], home: Path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "CEAL_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "ceal_pipeline.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_a_bad_ceal_yaml_stops_the_commands_that_use_it_with_its_errors_but_not_ceal_init(tmp_path):
    write(tmp_path / "ceal.yaml", {"round": {"k": 0}})
    refused = _ceal(["round"], tmp_path)
    assert refused.returncode == 2
    assert "round.k: Input should be greater than or equal to 1 (got 0" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _ceal(["init", "--help"], tmp_path).returncode == 0
