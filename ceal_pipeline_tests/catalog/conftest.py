"""Fixtures for the catalog specification: small nuScenes-style info files and the real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from ceal_pipeline_tests.catalog.info_folder import InfoFolder
from ceal_pipeline_tests.frames.conftest import DATASETS, nuscenes_sample  # noqa: F401 - the shared fixture

AIMOTIVE_SEQUENCE = DATASETS / "aimotive-sequence"


@pytest.fixture
def infos(tmp_path) -> InfoFolder:
    return InfoFolder(tmp_path / "source")


@pytest.fixture(scope="session")
def aimotive_sequence() -> Path:
    if not (AIMOTIVE_SEQUENCE / "data").is_dir():
        pytest.skip(f"aiMotive sequence not found at {AIMOTIVE_SEQUENCE} (../shared/datasets is absent here)")
    return AIMOTIVE_SEQUENCE
