"""Real data in three commands: `ceal init` checks a dataset and writes ceal.yaml; a round runs on it.

The round here runs the real assets, history and aiMotive reader on the 44 real frames of
../shared/datasets/aimotive-sequence with the instant stand-in detector of the pipeline tests
(the real tiny detector on the same data is in the README's measurements).
"""

from __future__ import annotations

import argparse
import json

import dagster as dg
import pytest
import yaml

from ceal_pipeline.canonical_paths import canonical_path
from ceal_pipeline.cli import main
from ceal_pipeline.cli.init import InitError, plan_configuration
from ceal_pipeline.configuration import load_project_config
from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.acquisition.config import run_configs_for
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.defs.resources import resources_for
from ceal_pipeline_tests.catalog.conftest import aimotive_sequence  # noqa: F401 - the shared fixture

from .conftest import DeterministicModelStore


def _summary(train: int, annotated: int, sequences: int = 4, val: int = 0) -> dict:
    return {"frames": train + val, "sequences": sequences, "splits": {"train": train, "val": val},
            "labeled_by_split": {"train": annotated, "val": val}, "labeled_frames": annotated + val}


def _args(**overrides) -> argparse.Namespace:
    values = {"source": "aimotive", "root": "/data/drive", "info": None, "preset": "gpu", "label_mode": None,
              "seed_labeled": None, "k": None}
    return argparse.Namespace(**{**values, **overrides})


def test_frames_annotated_in_the_source_are_the_seed_set_and_the_rest_the_pool(tmp_path):
    configuration, notes = plan_configuration(_summary(train=1000, annotated=100, val=50), _args(), tmp_path)
    assert configuration["source"] == {"kind": "aimotive", "root": "/data/drive", "label_mode": "source"}
    assert configuration["round"]["k"] == 22  # half of the 5 % pool of 900 unlabeled frames: a round that can be met
    assert "seed set: the 100 train frames annotated in the source; 900 unannotated" in notes[0]


def test_a_fully_annotated_dataset_simulates_the_vendor_with_a_fifth_as_seed_set(tmp_path):
    configuration, notes = plan_configuration(_summary(train=44, annotated=44, sequences=1), _args(preset="cpu-small"),
                                              tmp_path)
    assert configuration["source"]["label_mode"] == "simulated_vendor"
    assert configuration["source"]["seed_labeled"] == 8
    assert configuration["round"]["k"] == 3 and configuration["round"]["per_sequence_cap"] == 7  # pool: 7 of 36
    assert any("no val split" in note for note in notes)


def test_k_larger_than_the_pool_raises_the_pool_and_a_single_sequence_drops_the_cap(tmp_path):
    configuration, notes = plan_configuration(_summary(train=44, annotated=44, sequences=1), _args(k=10), tmp_path)
    assert configuration["round"]["pool_fraction"] == pytest.approx(20 / 36, abs=1e-3)
    assert configuration["round"]["per_sequence_cap"] == 0


@pytest.mark.parametrize("summary, args, message", [
    (_summary(train=10, annotated=0), _args(), "none of the 10 train frames is annotated"),
    (_summary(train=0, annotated=0), _args(), "no usable frame: the source lists no frames"),
    (_summary(train=0, annotated=0, val=5), _args(), "5 frames but none in the train split"),
    (_summary(train=10, annotated=10), _args(label_mode="source"), "nothing is left to buy"),
    (_summary(train=10, annotated=10), _args(seed_labeled=10), "at most 9 of the 10 annotated frames"),
])
def test_a_dataset_that_cannot_drive_a_round_is_refused_with_what_to_change(tmp_path, summary, args, message):
    with pytest.raises(InitError, match=message):
        plan_configuration(summary, args, tmp_path)


def test_init_then_a_round_on_the_real_aimotive_sequence(aimotive_sequence, tmp_path, capsys):  # noqa: F811
    home = tmp_path / "home"
    assert main(["init", "--source", "aimotive", "--root", str(aimotive_sequence), "--preset", "cpu-small",
                 "--home", str(home), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {home / 'ceal.yaml'}" in out and f"make dev CEAL_HOME={home}" in out
    assert "annotated, 1 sequence) in" in (home / "ceal.yaml").read_text()  # not "1 sequences"
    assert "Jobs -> open_next_round -> Launchpad -> Launch Run" in out  # how to open the first round
    written = yaml.safe_load((home / "ceal.yaml").read_text())
    # The root is stored once spelled, links resolved, as the catalog stores it (../shared may be a link).
    assert written["source"] == {"kind": "aimotive", "root": str(canonical_path(aimotive_sequence)),
                                 "label_mode": "simulated_vendor", "seed_labeled": 8}
    # A second init does not overwrite the configuration without --force.
    assert main(["init", "--source", "aimotive", "--root", str(aimotive_sequence), "--home", str(home)]) == 2

    project = load_project_config(environ={"CEAL_HOME": str(home)})
    resources = resources_for(project)
    resources["model_store"] = DeterministicModelStore(model_dir=project.storage.models)
    with dg.instance_for_test() as instance:
        report = run_acquisition_round(build_defs(resources, with_validation=False), instance, run_configs_for(project))

    assert (report.labeled_frames, report.unlabeled_frames, report.pool_frames, report.selected) == (8, 36, 7, 3)
    exported = {json.loads(line)["frame_id"] for line in
                (home / "outbox" / "round-0000" / "selected_frames.jsonl").read_text().splitlines()}
    seed_set = {str(f) for f in resources["history"].open().labeled_frames()}
    assert len(exported) == 3 and len(seed_set) == 8 and not exported & seed_set  # bought among the unlabeled
    assert sorted(p.name for p in aimotive_sequence.iterdir()) == ["LICENSE.txt", "data"]  # nothing written there


def test_a_frame_whose_lidar_file_goes_missing_leaves_the_pool_and_returns_when_it_is_back(
    aimotive_sequence, tmp_path  # noqa: F811
):
    import os
    import shutil

    from ceal_pipeline.defs.acquisition.assets import acquisition_assets

    root, home = tmp_path / "drive", tmp_path / "home"
    shutil.copytree(aimotive_sequence, root, copy_function=os.symlink)  # the real files, linked
    assert main(["init", "--source", "aimotive", "--root", str(root), "--preset", "cpu-small", "--home", str(home),
                 "--limit", "2"]) == 0
    resources = resources_for(load_project_config(environ={"CEAL_HOME": str(home)}))
    lidar = sorted(root.rglob("*.laz"))[-1]

    def register() -> dict:
        with dg.instance_for_test() as instance:
            result = dg.materialize(acquisition_assets, selection=["frame_catalog", "acquisition_history"],
                                    instance=instance, resources=resources)
        return {k: v.value for k, v in result.asset_materializations_for_node("acquisition_history")[0].metadata.items()
                if k in ("unlabeled_pool", "quarantined_added", "released_from_quarantine")}

    assert register() == {"unlabeled_pool": 44, "quarantined_added": 0, "released_from_quarantine": 0}
    target = lidar.readlink()
    lidar.unlink()
    assert register() == {"unlabeled_pool": 43, "quarantined_added": 1, "released_from_quarantine": 0}
    (missing,) = resources["history"].open().quarantined_frames()
    assert str(lidar) in missing.reason
    lidar.symlink_to(target)
    assert register() == {"unlabeled_pool": 44, "quarantined_added": 0, "released_from_quarantine": 1}
    assert missing.frame_id in set(resources["history"].open().unlabeled_pool(with_frame_ids=True).frame_ids)
