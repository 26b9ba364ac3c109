"""Specification of the shipped detector configs: a wheel carries ``models/`` as package data,
and an installed package resolves configs by name through its resources, from any directory,
with no repository in sight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What the build reads; copied so that building leaves no build/ or egg-info in the checkout.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "ceal_pipeline", "models")

RESOLVE = """
import json, ceal_pipeline
from ceal_pipeline.detector.builder import config_path, load_config, models_dir
tiny = load_config("bevfusion_tiny")
print(json.dumps({
    "package": ceal_pipeline.__file__,
    "models_dir": str(models_dir()),
    "tiny": str(config_path("bevfusion_tiny")),
    "tiny_name": tiny["name"],
    "tiny_model_type": tiny["model"]["type"],
    "resource_default": str(config_path("models/bevfusion_lite.py")),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True, text=True)
    (built,) = out.glob("ceal_pipeline-*.whl")
    return built


def test_the_wheel_carries_every_config_of_models_as_package_data(wheel):
    shipped = {Path(name).name for name in zipfile.ZipFile(wheel).namelist()
               if name.startswith("ceal_pipeline/detector/configs/")}
    assert shipped == {path.name for path in (REPO / "models").glob("*.py")}
    assert {"bevfusion_lite.py", "bevfusion_tiny.py", "pointpillars_lite.py"} <= shipped


def test_an_installed_package_resolves_configs_by_name_through_its_resources(wheel, tmp_path):
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)  # what installing a wheel does to a package
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", RESOLVE], cwd=elsewhere, env=env, check=True,
                          capture_output=True, text=True)
    resolved = json.loads(done.stdout.strip().splitlines()[-1])
    packaged = site / "ceal_pipeline" / "detector" / "configs"
    assert Path(resolved["package"]).is_relative_to(site), "the test must import the installed copy"
    assert Path(resolved["models_dir"]) == packaged
    assert Path(resolved["tiny"]) == packaged / "bevfusion_tiny.py"
    # _base_ = ['./bevfusion_lite.py'] resolves next to it, inside the package.
    assert resolved["tiny_name"] == "bevfusion_tiny" and resolved["tiny_model_type"] == "CealBEVFusion"
    # A path like "models/bevfusion_lite.py" names the shipped config when run from elsewhere.
    assert Path(resolved["resource_default"]) == packaged / "bevfusion_lite.py"


def test_the_wheel_ships_the_package_and_not_its_tests(wheel):
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "ceal_pipeline" in top_level
    assert "ceal_pipeline_tests" not in top_level
