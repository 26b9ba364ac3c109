"""Spec: a team's own mmdet3d detector (an official config, as shipped) carries whole rounds.

`ceal round` on a ceal.yaml whose ``detector.config`` is mmdet3d's PointPillars (KITTI,
3 classes): round 0 fine-tunes it on the seed set, the shards score the candidates with
MC-Dropout in its anchor head, the selection buys K and the export is written; round 1
warm-starts from round 0's weights. Slow on a CPU (about a minute), so it is marked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ceal_pipeline.cli import main

from .conftest import N_FRAMES

pytestmark = [pytest.mark.slow, pytest.mark.mmdet3d]


def _official_config(relative: str) -> Path:
    import mmdet3d

    path = Path(mmdet3d.__file__).parent / ".mim" / "configs" / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mmdet3d's official configs ship in mmdet3d/.mim/configs (mmdet3d 1.4.0)")
    return path


def test_two_rounds_with_an_official_pointpillars_config(tmp_path, synthetic_root, monkeypatch, capsys):
    home = tmp_path / "deployment"
    home.mkdir()
    (home / "ceal.yaml").write_text(yaml.safe_dump({
        "preset": "cpu-small",
        "source": {"kind": "synthetic", "root": str(synthetic_root), "synthetic_frames": N_FRAMES, "synthetic_seed": 3,
                   "seed_labeled": 6},
        "detector": {"config": str(_official_config("pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py")),
                     "train": "fine_tune", "device": "cpu", "epochs": 1, "fine_tune_epochs": 1,
                     "max_eval_frames": 2, "loader_workers": 0},
        "round": {"k": 2, "pool_count": 5, "shard_size": 5, "mc_passes": 3, "round_zero_mode": "prior",
                  "per_sequence_cap": 0},
    }))
    for variable in ("CEAL_CONFIG", "DAGSTER_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CEAL_HOME", str(home))

    assert main(["round", "--rounds", "2"]) == 0

    rounds = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["round"] for r in rounds] == [0, 1]
    assert all(r["frames_scored"] == 5 and r["selected"] == 2 for r in rounds)
    for r in rounds:
        assert (Path(r["export"]) / "manifest.json").is_file()
