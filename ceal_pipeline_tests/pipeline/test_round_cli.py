"""`ceal round`: whole rounds in this process on the deployment's ceal.yaml, recorded in its Dagster instance."""

from __future__ import annotations

import json

import dagster as dg
import yaml

from ceal_pipeline.cli import main
from ceal_pipeline.defs import resources as resources_module

from .conftest import N_FRAMES, SEED_LABELED, DeterministicModelStore


def test_ceal_round_runs_a_round_on_the_configuration_in_ceal_home(tmp_path, synthetic_root, monkeypatch, capsys):
    home = tmp_path / "deployment"
    home.mkdir()
    (home / "ceal.yaml").write_text(yaml.safe_dump({
        "preset": "cpu-small",
        "source": {"kind": "synthetic", "root": synthetic_root, "synthetic_frames": N_FRAMES, "synthetic_seed": 3,
                   "seed_labeled": SEED_LABELED},
        "round": {"k": 5, "shard_size": 24, "per_sequence_cap": 0},
    }))
    for variable in ("CEAL_CONFIG", "DAGSTER_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CEAL_HOME", str(home))
    configured = resources_module.resources_for

    def with_instant_detector(project):
        resources = configured(project)
        resources["model_store"] = DeterministicModelStore(model_dir=project.storage.models)
        return resources

    monkeypatch.setattr(resources_module, "resources_for", with_instant_detector)

    assert main(["round", "--rounds", "2"]) == 0

    rounds = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["round"] for r in rounds] == [0, 1] and all(r["selected"] == 5 for r in rounds)
    assert rounds[0]["export"] == str(home / "outbox" / "round-0000")
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:  # what `make dev` shows
        jobs = {run.job_name for run in instance.get_runs()}
    assert jobs == {"nightly_acquisition", "score_candidate_shards", "round_selection"}

    # `ceal status` reads where each round stands from the history alone.
    assert main(["status", "--json"]) == 0
    status = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(s["round"], s["stage"], s["selected"], s["missing_shards"]) for s in status] == [
        (0, "exported", 5, []), (1, "exported", 5, [])]
    assert status[1]["export"]["path"] == rounds[1]["export"] and status[1]["shards"] == rounds[1]["shards"]
    assert main(["status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["round", "stage", "detector", "pool", "shards", "selected", "export"]
    assert table[2].split()[:2] == ["1", "exported"] and len(table) == 3  # nothing left to do

    # `ceal frames`: nothing quarantined in a synthetic source; a pruned frame returns with a recorded reason.
    from ceal_pipeline.core.history import AcquisitionHistory

    history = AcquisitionHistory(home / "history.duckdb")
    frame = str(history.unlabeled_pool(with_frame_ids=True).frame_ids[0])
    history.prune([frame], round=1, reason="persistently low")
    assert main(["frames", "quarantined", "--json"]) == 0 and capsys.readouterr().out == ""
    assert main(["frames", "unprune", "--all", "--reason", "new acquisition function"]) == 0
    assert json.loads(capsys.readouterr().out) == {"unpruned": 1, "frames": [frame],
                                                   "reason": "new acquisition function"}
    assert len(history.pruned_frames()) == 0
    assert main(["frames", "unprune", "--frame", "no-such-frame", "--reason", "x"]) == 2
    assert "no-such-frame" in capsys.readouterr().err
