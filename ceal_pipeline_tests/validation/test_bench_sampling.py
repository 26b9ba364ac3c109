"""Specifications of `ceal bench sampling` at a size that runs in seconds."""

from __future__ import annotations

import json

import pytest

from ceal_pipeline.cli import main

FRAMES = 20_000


def _bench(capsys, *extra: str) -> tuple[dict, str]:
    assert main(["bench", "sampling", "--frames", str(FRAMES), "--repeats", "2", *extra]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {out!r}"
    return json.loads(lines[0]), err


def test_bench_sampling_prints_one_json_line_with_the_measured_figures(capsys, tmp_path):
    result, err = _bench(capsys, "--json", "--shard-rows", "2000", "--workdir", str(tmp_path))
    assert err == ""  # --json: no progress bar, nothing from DuckDB either
    assert result["frames"] == FRAMES
    assert result["pool_size"] == FRAMES // 20
    # Durations are reported to significant figures, so a sub-millisecond draw on a
    # fast machine is still a positive number, and the speedup is their ratio.
    for key in ("candidate_pool_s", "sample_s", "reference_choice_s", "read_s", "write_s", "ingest_shard_s"):
        assert result[key] > 0, key
    assert result["speedup_vs_reference"] == pytest.approx(result["reference_choice_s"] / result["sample_s"], rel=2e-3)
    assert len(result["candidate_pool_runs_s"]) == 2
    assert result["candidate_pool_s"] in result["candidate_pool_runs_s"]  # the median of the timed steps
    parts = result["read_s"] + result["sample_in_step_s"] + result["write_s"]
    assert parts == pytest.approx(result["candidate_pool_s"], rel=2e-3)  # the median step, split into its parts
    assert result["peak_rss_mb"] > 0  # the whole test process's peak, which earlier tests in the session raise
    # One full scoring of the pool to build it, then the timed shard on top.
    assert result["score_events"] == FRAMES
    assert result["merge_pool_shards_s"] > 0
    assert result["score_events_after_ingest"] == FRAMES + result["pool_size"] + 2000
    assert (tmp_path / "history.duckdb").is_file()  # an explicit --workdir is kept for inspection


def test_bench_sampling_grows_the_history_to_the_requested_events(capsys):
    result, err = _bench(capsys, "--shard-rows", "0", "--events", str(3 * FRAMES))
    assert result["score_events"] == 3 * FRAMES
    assert result["rebuild_latest_scores_s"] > 0
    assert "ingest_shard_s" not in result
    assert "candidate-pool step" in err  # the progress bar goes to stderr, not into the JSON


def test_bench_sampling_times_the_merge_of_a_rank_combinations_shards(capsys, tmp_path):
    from ceal_pipeline.core.history import AcquisitionHistory

    result, _ = _bench(capsys, "--json", "--shard-rows", "0", "--rank-terms", "--workdir", str(tmp_path))
    assert result["merge_ranked"] is True and result["merge_pool_shards_s"] > 0
    # The merged round holds ranks over all 16 shards: every value in [0, 2], the pool's best near 2.
    history = AcquisitionHistory(tmp_path / "history.duckdb")
    last_round = max(r for r in range(10) if history.has_candidate_pool(r))
    scores = history.round_scores(last_round).scores
    assert len(scores) == result["pool_size"] and 0.0 <= scores.min() and scores.max() <= 2.0


def test_bench_sampling_refuses_a_used_workdir(capsys, tmp_path):
    (tmp_path / "history.duckdb").write_bytes(b"")
    with pytest.raises(SystemExit, match="give an empty --workdir"):
        main(["bench", "sampling", "--frames", "100", "--json", "--workdir", str(tmp_path)])
