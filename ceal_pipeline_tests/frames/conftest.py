"""Shared fixtures for the frame-source tests: the real samples and a small synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``$CEAL_DATASETS`` when set (as the validation data), else ``../shared/datasets`` beside the
#: checkout, kept as spelled: when either is a symbolic link the tests read through it, as a user would.
DATASETS = Path(os.environ.get("CEAL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets")
AIMOTIVE_SAMPLE = DATASETS / "aimotive-sample"
NUSCENES_SAMPLE = DATASETS / "nuscenes-sample"

#: A dataset small enough for every test: 3 sequences of 6 frames.
SMALL_SYNTHETIC = dict(n_frames=18, seed=7, frames_per_sequence=6)


@pytest.fixture(scope="session")
def aimotive_sample() -> Path:
    if not (AIMOTIVE_SAMPLE / "data").is_dir():
        pytest.skip(f"aiMotive sample not found at {AIMOTIVE_SAMPLE} (../shared/datasets is absent on this machine)")
    return AIMOTIVE_SAMPLE


@pytest.fixture(scope="session")
def nuscenes_sample() -> Path:
    if not any(NUSCENES_SAMPLE.glob("*.pkl")):
        pytest.skip(f"nuScenes sample not found at {NUSCENES_SAMPLE} (../shared/datasets is absent on this machine)")
    return NUSCENES_SAMPLE


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """Root of a generated small synthetic dataset; tests must not modify it."""
    from ceal_pipeline.frames.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, **SMALL_SYNTHETIC)
    return root
