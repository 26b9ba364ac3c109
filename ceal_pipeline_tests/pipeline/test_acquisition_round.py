"""A whole acquisition round through Dagster: open, score every shard, select, export."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.cli.demo_vendor import simulate_vendor
from ceal_pipeline.export import read_vendor_export, write_label_delivery
from ceal_pipeline.export.vendor_formats import openlabel_name
from ceal_pipeline.export.vendor_inbox import ground_truth_labels
from ceal_pipeline_tests.history.conftest import recorded_round, rejected_deliveries

K = 6


def configs(**pool):
    return {
        "candidate_pool": CandidatePoolConfig(**{"shard_size": 24, "k": K, "per_sequence_cap": 3,
                                                 "selection": {"method": "topk"}, **pool}),
        "selected_batch": SelectionConfig(k=K, per_sequence_cap=3),
    }


def test_round_zero_scores_every_unlabeled_frame_and_exports_k_fresh_frames(defs, instance, resources):
    report = run_acquisition_round(defs, instance, configs())

    history = resources["history"].open()
    assert report.round_index == 0
    assert report.pool_frames == report.unlabeled_frames == len(history.unlabeled_pool())
    assert report.frames_scored == report.pool_frames
    assert len(report.shards_scored) == report.shards == -(-report.pool_frames // 24)
    export = read_vendor_export(report.export_folder)
    assert export.count == K and report.new_export
    assert list(export.frame_ids) == [str(f) for f in history.selection(0).frame_ids]
    # what the vendor labels from: one task per frame, with sensor URIs and the detector's pre-labels
    assert {"project.json", "tasks.jsonl", "mmdet3d_infos.pkl"} <= set(export.sha256)
    assert sorted(f for f in export.sha256 if f.startswith("openlabel/")) == sorted(
        openlabel_name(f) for f in export.frame_ids)
    tasks = [json.loads(line) for line in (export.folder / "tasks.jsonl").read_text().splitlines()]
    assert [t["external_id"] for t in tasks] == list(export.frame_ids)
    assert all(t["lidar"]["uri"].startswith("file://") for t in tasks) and any(t["pre_labels"] for t in tasks)
    # the selection is the top-K of the round's fresh scores under the sequence cap
    fresh = history.round_scores(0)
    best = sorted(zip(fresh.scores, fresh.frame_ids), key=lambda p: (-p[0], p[1]))
    assert history.selection(0).scores[0] == best[0][0]
    # every blocking check ran and passed
    checks = {
        key.name: instance.get_latest_asset_check_evaluation_record(key).event.asset_check_evaluation.passed
        for key in defs.resolve_asset_graph().asset_check_keys
    }
    assert checks == dict.fromkeys(checks, True) and len(checks) == 4  # 3 blocking, and the ties warning


def test_round_one_rescores_only_the_candidate_pool_and_trains_on_delivered_labels(defs, instance, resources):
    first = run_acquisition_round(defs, instance, configs())
    simulate_vendor(resources["exporter"].outbox, resources["exporter"].inbox,
                    resources["frame_source"].catalog().records)

    second = run_acquisition_round(defs, instance, configs(pool_count=20))

    assert second.round_index == 1
    assert second.labeled_frames == first.labeled_frames + K
    assert second.unlabeled_frames == first.unlabeled_frames - K
    assert second.pool_frames == second.frames_scored == 20
    exported = set(read_vendor_export(first.export_folder).frame_ids)
    assert not exported & set(read_vendor_export(second.export_folder).frame_ids)
    ledger = recorded_round(resources["history"].open(), 1)["ledger"]
    assert ledger["frames_scored"] == 20 and ledger["pool_frames"] == second.unlabeled_frames


def _labeled_set_metadata(instance) -> dict:
    record = instance.fetch_materializations(dg.AssetKey("labeled_set"), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_frames_exported_but_not_yet_delivered_are_not_bought_again(defs, instance, resources):
    first = run_acquisition_round(defs, instance, configs())
    # The vendor has not delivered round 0 yet; round 1 rescores the whole pool again.
    second = run_acquisition_round(defs, instance, configs(round_zero_mode="prior", pool_fraction=1.0))

    exported = set(read_vendor_export(first.export_folder).frame_ids)
    assert not exported & set(read_vendor_export(second.export_folder).frame_ids)
    assert second.labeled_frames == first.labeled_frames  # nothing delivered, nothing labeled


def _truth(resources, frame_ids):
    return ground_truth_labels(resources["frame_source"].catalog().records(frame_ids))


def test_a_delivery_naming_frames_that_were_never_exported_is_rejected_whole(defs, instance, resources):
    first = run_acquisition_round(defs, instance, configs())
    exported = list(read_vendor_export(first.export_folder).frame_ids)
    unexported = sorted(set(str(f) for f in resources["history"].open().unlabeled_pool(with_frame_ids=True).frame_ids)
                        - set(exported))[0]
    inbox = resources["exporter"].inbox
    foreign = write_label_delivery(inbox, 0, _truth(resources, exported[:3] + [unexported]))
    never = write_label_delivery(inbox, 7, _truth(resources, exported[3:]))  # a round that was never exported

    second = run_acquisition_round(defs, instance, configs(pool_count=20))

    assert second.labeled_frames == first.labeled_frames  # nothing of either file was used
    rejected = _labeled_set_metadata(instance)["rejected_deliveries"]
    assert set(rejected) == {str(foreign), str(never)}
    assert unexported in rejected[str(foreign)] and "never exported in round 0" in rejected[str(foreign)]
    assert "round 7 has no recorded export" in rejected[str(never)]
    recorded = rejected_deliveries(resources["history"].open())
    assert {path for path, _, _ in recorded} == {str(foreign), str(never)}


def test_the_detector_trains_on_the_delivered_boxes_not_the_sources(defs, instance, resources, tmp_path):
    first = run_acquisition_round(defs, instance, configs())
    exported = list(read_vendor_export(first.export_folder).frame_ids)
    truth = _truth(resources, exported)
    # The vendor's boxes differ from the source's annotations: the vendor's are what counts.
    vendor = {f: (boxes + [1.0, 0, 0, 0, 0, 0, 0], names) for f, (boxes, names) in truth.items()}
    write_label_delivery(resources["exporter"].inbox, 0, vendor, fmt="mmdet3d")
    run_acquisition_round(defs, instance, configs(pool_count=20))

    trained = json.loads(Path(resources["model_store"].training_log).read_text().splitlines()[-1])
    for frame_id in exported:
        np.testing.assert_allclose(trained[frame_id], vendor[frame_id][0], atol=1e-5)
    delivered = resources["history"].open().deliveries()
    assert [(d["round"], d["format"], d["vendor"], d["n_frames"]) for d in delivered] == [
        (0, "mmdet3d", "simulated-vendor", K)]  # the pickle's metainfo.annotator


def test_labels_ingest_cli_and_the_inbox_share_one_path_and_a_repeat_is_a_no_op(
    defs, instance, resources, tmp_path, capsys
):
    from ceal_pipeline.cli import main

    first = run_acquisition_round(defs, instance, configs())
    exported = list(read_vendor_export(first.export_folder).frame_ids)
    outside = write_label_delivery(tmp_path / "vendor-upload", 0, _truth(resources, exported), vendor="acme-labels")
    command = ["labels", "ingest", "--format", "openlabel", str(outside), "--round", "0",
               "--history", resources["history"].path, "--inbox", resources["exporter"].inbox]

    assert main(command) == 0
    assert json.loads(capsys.readouterr().out) | {"rejected": None} == {
        "round": 0, "files": 1, "frames_added": K, "boxes_added": sum(len(b) for b, _ in
                                                                         _truth(resources, exported).values()),
        "already_ingested": 0, "rejected": None}
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["already_ingested"] == 1
    assert main([*command[:3], "mmdet3d", *command[4:]]) == 1  # the wrong format is refused, named
    assert "pass --format openlabel" in json.dumps(json.loads(capsys.readouterr().out)["rejected"])

    second = run_acquisition_round(defs, instance, configs(pool_count=20))
    assert second.labeled_frames == first.labeled_frames + K  # the inbox copy is the same delivery: no-op
    assert [d["vendor"] for d in resources["history"].open().deliveries()] == ["acme-labels"]


def test_a_withdrawn_export_is_recorded_with_its_reason_and_its_frames_may_be_bought_again(
    defs, instance, resources, capsys
):
    from ceal_pipeline.cli import main

    first = run_acquisition_round(defs, instance, configs())
    exported = list(read_vendor_export(first.export_folder).frame_ids)
    history = resources["history"].open()
    assert history.awaiting_labels(1) == set(exported)
    path = resources["history"].path

    assert main(["export", "withdraw", "--history", path, "--round", "0", "--frame", exported[0],
                 "--reason", "vendor lost the upload"]) == 0
    assert json.loads(capsys.readouterr().out) == {"round": 0, "withdrawn": 1, "reason": "vendor lost the upload"}
    assert history.awaiting_labels(1) == set(exported[1:])
    assert history.withdraw_export(0, [exported[0]], reason="again") == 0  # a repeat is a no-op

    with pytest.raises(SystemExit, match="not in round 0's export"):
        main(["export", "withdraw", "--history", path, "--round", "0", "--frame", "seq99-000001", "--reason", "x"])
    with pytest.raises(SystemExit, match="round 5 has no recorded export"):
        main(["export", "withdraw", "--history", path, "--round", "5", "--reason", "x"])
    with pytest.raises(SystemExit, match="needs a reason"):
        main(["export", "withdraw", "--history", path, "--round", "0", "--reason", " "])
    history.add_labels([exported[1]], round=1, source="vendor")
    with pytest.raises(SystemExit, match="already arrived"):
        main(["export", "withdraw", "--history", path, "--round", "0", "--reason", "the rest"])
    assert history.awaiting_labels(1) == set(exported[2:])  # the refused withdrawal recorded nothing
