"""Fixtures for the catalog specification: small nuScenes-style info files and the real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from ceal_pipeline_tests.catalog.info_folder import InfoFolder

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
AIMOTIVE_SEQUENCE = DATASETS / "aimotive-sequence"
NUSCENES_SAMPLE = DATASETS / "nuscenes-sample"


@pytest.fixture
def infos(tmp_path) -> InfoFolder:
    return InfoFolder(tmp_path / "source")


@pytest.fixture(scope="session")
def aimotive_sequence() -> Path:
    if not (AIMOTIVE_SEQUENCE / "data").is_dir():
        pytest.skip(f"aiMotive sequence not found at {AIMOTIVE_SEQUENCE} (../shared/datasets is absent here)")
    return AIMOTIVE_SEQUENCE


@pytest.fixture(scope="session")
def nuscenes_sample() -> Path:
    if not any(NUSCENES_SAMPLE.glob("*.pkl")):
        pytest.skip(f"nuScenes sample not found at {NUSCENES_SAMPLE} (../shared/datasets is absent here)")
    return NUSCENES_SAMPLE
