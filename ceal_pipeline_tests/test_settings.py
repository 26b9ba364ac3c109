"""Deployment defaults from the environment: every run of a deployment sees the same source and detector."""

from __future__ import annotations

import pytest

from ceal_pipeline import settings


def test_unset_variables_give_the_documented_defaults(monkeypatch):
    for variable in ("CEAL_SOURCE_KIND", "CEAL_SYNTHETIC_FRAMES", "CEAL_LABEL_MODE", "CEAL_SEED_LABELED",
                     "CEAL_DETECTOR_CONFIG", "CEAL_DEVICE", "CEAL_SOURCE_INFO"):
        monkeypatch.delenv(variable, raising=False)
    assert (settings.source_kind(), settings.synthetic_frames(), settings.label_mode(), settings.seed_labeled(),
            settings.detector_config(), settings.device(), settings.source_info()) == (
        "synthetic", 2000, "simulated_vendor", 100, "bevfusion_lite", "auto", "")


def test_set_variables_become_the_resources_defaults(monkeypatch):
    monkeypatch.setenv("CEAL_SYNTHETIC_FRAMES", "600")
    monkeypatch.setenv("CEAL_DETECTOR_CONFIG", "bevfusion_tiny")
    monkeypatch.setenv("CEAL_SOURCE_KIND", "aimotive")
    assert settings.synthetic_frames() == 600
    assert settings.detector_config() == "bevfusion_tiny"
    assert settings.source_kind() == "aimotive"


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("CEAL_SOURCE_KIND", "nuscenes", "CEAL_SOURCE_KIND='nuscenes': use one of synthetic, mmdet3d, aimotive"),
        ("CEAL_LABEL_MODE", "vendor", "CEAL_LABEL_MODE='vendor': use one of source, simulated_vendor"),
        ("CEAL_SYNTHETIC_FRAMES", "600 frames", "is not a whole number; set e.g. CEAL_SYNTHETIC_FRAMES=2000"),
        ("CEAL_SEED_LABELED", "-5", "must not be negative"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_fix(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    reader = {"CEAL_SOURCE_KIND": settings.source_kind, "CEAL_LABEL_MODE": settings.label_mode,
              "CEAL_SYNTHETIC_FRAMES": settings.synthetic_frames, "CEAL_SEED_LABELED": settings.seed_labeled}[variable]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reader()


def test_the_schedules_run_config_comes_from_the_file_the_variable_names(monkeypatch, tmp_path):
    monkeypatch.delenv("CEAL_NIGHTLY_RUN_CONFIG", raising=False)
    assert settings.nightly_run_config() == {}
    path = tmp_path / "nightly.yaml"
    path.write_text("ops:\n  candidate_pool:\n    config: {k: 20, pool_fraction: 0.1}\n")
    monkeypatch.setenv("CEAL_NIGHTLY_RUN_CONFIG", str(path))
    assert settings.nightly_run_config() == {"ops": {"candidate_pool": {"config": {"k": 20, "pool_fraction": 0.1}}}}


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("- k: 20\n", "holds a list, not a run config")])
def test_a_missing_or_malformed_nightly_run_config_names_the_variable_and_the_fix(monkeypatch, tmp_path, content,
                                                                                 message):
    path = tmp_path / "nightly.yaml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("CEAL_NIGHTLY_RUN_CONFIG", str(path))
    with pytest.raises(ValueError, match=f"CEAL_NIGHTLY_RUN_CONFIG=.*{message}"):
        settings.nightly_run_config()
