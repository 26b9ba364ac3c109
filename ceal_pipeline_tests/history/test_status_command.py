"""`ceal status`: each round's record from the history, and what launches next for a round that stopped half way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ceal_pipeline.cli import main

from .conftest import frame_ids, provenance


def test_a_round_waiting_for_shards_names_them_and_the_partitions_to_launch(history, tmp_path, capsys):
    path = str(tmp_path / "history.duckdb")
    assert main(["status", "--history", path]) == 0
    assert "no round started yet" in capsys.readouterr().out
    history.start_round(0, seed=5, parameters={})
    history.record_round_model(0, "det-a")
    history.save_candidate_pool(0, frame_ids=frame_ids()[:12], n_shards=3)
    history.record_scores(list(history.candidate_pool(0).shard(1)), np.ones(4), round=0, shard=1, **provenance())

    assert main(["status", "--history", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0", "pool", "drawn", "det-a", "12", "1/3", "0", "-"]
    assert lines[2] == ("round 0 is not exported; next: score shards 0, 2 (score_candidate_shards partitions "
                        "r0000-s000, r0000-s002); round_selection then merges them")
    assert main(["status", "--history", path, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["stage"], record["missing_shards"], record["export"]) == ("pool drawn", [0, 2], None)


def test_a_history_that_does_not_exist_is_named_not_created(tmp_path):
    with pytest.raises(SystemExit, match="ceal status: no acquisition history at .*nowhere.duckdb"):
        main(["status", "--history", str(tmp_path / "nowhere.duckdb")])
    assert not (tmp_path / "nowhere.duckdb").exists()
