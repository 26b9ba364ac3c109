"""`ceal bench round`: one CEAL round against one full-pool round on the same detector."""

from __future__ import annotations

import argparse
import math

import pytest

import ceal_pipeline.defs.resources as resources_module
from ceal_pipeline.validation.compute import acquisition_round
from ceal_pipeline.core.sampling import pool_size

from .conftest import DeterministicModelStore


def test_round_benchmark_compares_a_candidate_pool_round_with_a_full_rescoring_round(tmp_path, monkeypatch):
    # The benchmark's plumbing, with the hash detector standing in for the real one.
    monkeypatch.setattr(resources_module, "ModelStoreResource", DeterministicModelStore)
    parser = argparse.ArgumentParser()
    acquisition_round.add_arguments(parser)
    args = parser.parse_args(
        ["--frames", "100", "--seed-labeled", "10", "--k", "3", "--shard-size", "8", "--pool-fraction", "0.1",
         "--home", str(tmp_path)]
    )
    args.json = True

    result = acquisition_round.run(args)

    unlabeled = result["pool_frames"]
    assert result["scored_full"] == unlabeled
    assert result["scored_ceal"] == result["candidate_pool_frames"] == pool_size(unlabeled, fraction=0.1)
    assert result["shards_full"] == math.ceil(unlabeled / 8) and result["shards_ceal"] == math.ceil(
        result["scored_ceal"] / 8
    )
    assert result["forward_passes_full"] == unlabeled * 10
    # The ratio is of the measured seconds (not of the rounded figures), whatever the machine's speed.
    assert result["compute_ratio"] == pytest.approx(result["full_round_s"] / result["ceal_round_s"], rel=2e-3)
    assert result["forward_passes_ceal"] == result["scored_ceal"] * 10 < result["forward_passes_full"]
