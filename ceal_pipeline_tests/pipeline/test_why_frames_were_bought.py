"""Specification: the UI and the export say why each frame was bought, and the detector shows how it trained.

One acquisition round runs once for the module (the stand-in detector explains
each score with 0-3 objects); every test reads what that round left behind.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from ceal_pipeline.core.history.shards import EXPLANATION_COLUMNS
from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig
from ceal_pipeline.defs.acquisition.explanation_views import TOP_FRAMES_SCHEMA
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.defs.acquisition.round_selection import SELECTED_BATCH_DESCRIPTION
from ceal_pipeline.defs.resources import AcquisitionHistoryResource, FrameSourceResource, VendorExporterResource
from ceal_pipeline.export import CorruptExport, read_vendor_export
from ceal_pipeline_tests.pipeline.conftest import N_FRAMES, SEED_LABELED, DeterministicModelStore

K = 6
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def closed_round(tmp_path_factory, synthetic_root):
    home = tmp_path_factory.mktemp("why") / "ceal"
    resources = {
        "history": AcquisitionHistoryResource(path=str(home / "history.duckdb"), shard_dir=str(home / "shards")),
        "model_store": DeterministicModelStore(model_dir=str(home / "models")),
        "frame_source": FrameSourceResource(root=synthetic_root, catalog_dir=str(home / "catalog"),
                                            synthetic_frames=N_FRAMES, synthetic_seed=3, seed_labeled=SEED_LABELED),
        "exporter": VendorExporterResource(outbox=str(home / "outbox"), inbox=str(home / "inbox"),
                                           reviews=str(home / "reviews")),
    }
    defs = build_defs(resources, with_validation=False)
    with dg.instance_for_test() as instance:
        report = run_acquisition_round(defs, instance, {
            "candidate_pool": CandidatePoolConfig(shard_size=24, k=K, per_sequence_cap=3),
            "selected_batch": SelectionConfig(k=K, per_sequence_cap=3),
        })
        yield report, instance, resources


def metadata(instance, asset: str) -> dict:
    record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
    return dict(record.asset_materialization.metadata)


def embedded_png(markdown: str) -> bytes:
    match = re.search(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, "no PNG embedded as a data: image"
    return base64.b64decode(match.group(1))


def test_every_score_shard_file_carries_the_explanation_columns(closed_round):
    report, _, resources = closed_round
    exchange = resources["history"].exchange()
    for shard in range(report.shards):
        table = pq.read_table(exchange.scores_path(0, shard))
        assert set(EXPLANATION_COLUMNS) <= set(table.column_names)
        assert table.column("aggregate").to_pylist() == ["mean"] * table.num_rows


def test_selected_batch_shows_the_top_frames_as_table_metadata_with_a_schema(closed_round):
    report, instance, resources = closed_round
    table = metadata(instance, "selected_batch")["top_frames"]
    assert isinstance(table, dg.TableMetadataValue)
    assert table.schema == TOP_FRAMES_SCHEMA
    assert [c.name for c in table.schema.columns][:8] == [
        "rank", "frame_id", "sequence_id", "score_nats", "detections", "per_class", "no_detection_floor", "aggregate",
    ]
    rows = [r.data for r in table.records]
    selection = resources["history"].open().selection(0)
    assert [r["frame_id"] for r in rows] == [str(f) for f in selection.frame_ids]
    assert [r["rank"] for r in rows] == list(range(1, K + 1))
    explanations = resources["history"].exchange().explanations(0, [r["frame_id"] for r in rows])
    assert any(explanations[r["frame_id"]].most_uncertain for r in rows)  # both branches below are exercised
    assert not all(explanations[r["frame_id"]].most_uncertain for r in rows)
    for row in rows:
        explanation = explanations[row["frame_id"]]
        assert row["detections"] == explanation.n_detections
        assert row["no_detection_floor"] == explanation.at_empty_floor
        if explanation.most_uncertain:
            top = explanation.most_uncertain[0]
            assert row["most_uncertain"].startswith(top.class_name)
            assert row["entropy_nats"] == pytest.approx(top.localization_entropy, abs=1e-4)
            assert row["centre_std_m"] == pytest.approx(top.centre_std_m, abs=1e-4)
        else:
            assert row["most_uncertain"] is None and row["per_class"] == "none"


def test_selected_batch_shows_a_bird_eye_view_png_and_explains_the_scores_unit(closed_round):
    _, instance, _ = closed_round
    found = metadata(instance, "selected_batch")
    view = found["bird_eye_view"]
    assert isinstance(view, dg.MarkdownMetadataValue)
    assert embedded_png(view.value).startswith(PNG_MAGIC)
    assert "MC-Dropout passes disagreed" in view.value  # the caption says how to read it
    assert found["frames_explained"].value == K
    for words in ("nats", "differential entropy", "negative", "-25.5", "Higher (less negative)"):
        assert words in SELECTED_BATCH_DESCRIPTION


def test_the_export_says_why_each_frame_was_bought_in_rank_order(closed_round):
    report, _, resources = closed_round
    folder = Path(report.export_folder)
    export = read_vendor_export(folder)  # verifies explanations.jsonl against the manifest
    assert "explanations.jsonl" in json.loads((folder / "manifest.json").read_text())["files"]
    lines = [json.loads(line) for line in (folder / "explanations.jsonl").read_text().splitlines()]
    assert [line["frame_id"] for line in lines] == list(export.frame_ids)
    assert [line["rank"] for line in lines] == list(range(1, K + 1))
    explanations = resources["history"].exchange().explanations(0, list(export.frame_ids))
    for line in lines:
        assert line["score_unit"] == "nats"
        assert line["explanation"] == explanations[line["frame_id"]].to_record()


def test_an_export_whose_explanations_were_edited_fails_verification(closed_round, tmp_path):
    import shutil

    report, _, _ = closed_round
    copy = tmp_path / "round-0000"
    shutil.copytree(report.export_folder, copy)
    (copy / "explanations.jsonl").write_text("{}\n")
    with pytest.raises(CorruptExport, match="explanations.jsonl"):
        read_vendor_export(copy)


def test_the_detector_shows_its_loss_curve_and_per_class_ap_as_a_plot_and_as_numbers(closed_round):
    _, instance, _ = closed_round
    found = metadata(instance, "detector")
    curve = found["loss_curve"].value
    assert [e["epoch"] for e in curve] == list(range(1, len(curve) + 1)) and len(curve) >= 1
    assert found["epochs_trained"].value == len(curve)
    assert found["final_training_loss"].value == pytest.approx(curve[-1]["loss"])
    assert found["per_class_ap"].value == {"car": 0.5}
    assert embedded_png(found["training_and_ap"].value).startswith(PNG_MAGIC)


def test_candidate_scores_show_their_top_frames_with_the_same_schema(closed_round):
    _, instance, _ = closed_round
    found = metadata(instance, "candidate_scores")
    assert found["top_frames"].schema == TOP_FRAMES_SCHEMA
    assert found["frames_at_no_detection_floor"].value == 0  # stand-in scores are never the floor


def test_an_export_of_unexplained_scores_has_no_explanations_file(tmp_path):
    from ceal_pipeline.export import ExportedFrame, write_vendor_export

    rows = [ExportedFrame("f1", "s1", -12.0), ExportedFrame("f2", "s1", -13.0)]
    export = write_vendor_export(tmp_path, 0, "m1", rows)
    assert not (export.folder / "explanations.jsonl").exists()
    assert set(json.loads(export.manifest_path.read_text())["files"]) == {"selected_frames.csv",
                                                                          "selected_frames.jsonl"}
    assert read_vendor_export(export.folder).frame_ids == ("f1", "f2")


def test_round_review_writes_the_rounds_3d_recording_and_shows_how_to_open_it(closed_round):
    """The review recording, read back with Rerun's own reader, holds every bought frame in rank
    order with its points, the pre-labels the vendor got and the most uncertain objects."""
    from ceal_pipeline.frames.points import load_points
    from ceal_pipeline.review.recording import recording_counts

    report, instance, resources = closed_round
    found = metadata(instance, "round_review")
    path = Path(found["path"].value)
    assert path == Path(resources["exporter"].reviews) / "round-0000.rrd" and path.is_file()
    assert "ceal review --round 0 --open" in found["open_command"].value
    assert found["frames"].value == K
    assert found["seconds_per_frame"].value > 0 and found["mb_per_frame"].value > 0

    folder = Path(report.export_folder)
    tasks = [json.loads(line) for line in (folder / "tasks.jsonl").read_text().splitlines()]
    explained = [json.loads(line) for line in (folder / "explanations.jsonl").read_text().splitlines()]
    records = resources["frame_source"].catalog().records([t["external_id"] for t in tasks])
    counts = recording_counts(path)

    assert counts["application_id"] == "ceal-review" and counts["recording_id"] == "round-0000"
    assert counts["ranks"] == list(range(1, K + 1))
    assert counts["points"] == sum(len(load_points(r)) for r in records)
    assert counts["pre_label_boxes"] == sum(len(t["pre_labels"] or []) for t in tasks) > 0
    assert counts["uncertain_boxes"] == sum(len(e["explanation"]["most_uncertain"]) for e in explained) > 0
    assert counts["camera_images"] == sum(1 for r in records for c in r.cameras if Path(c.path).is_file())
    for key in ("points", "pre_label_boxes", "uncertain_boxes", "camera_images"):
        assert found[key].value == counts[key]
    assert {"/world/ego", "/world/ego/lidar/points", "/world/ego/lidar/pre_labels", "/frame/summary",
            "/frame/score"} <= set(counts["entities"])
    # beside them, to compare: the best-scoring candidates that were not bought
    scores = resources["history"].open().round_scores(0)
    unbought = sorted(((s, f) for f, s in zip(scores.frame_ids, scores.scores) if f not in set(export_ids(folder))),
                      reverse=True)[:5]
    assert [c["frame_id"] for c in found["unbought_candidates"].value] == [f for _, f in unbought]
    assert counts["candidate_ranks"] == list(range(1, len(unbought) + 1))
    assert "/candidates/ego/lidar/points" in counts["entities"]


def export_ids(folder: Path) -> list[str]:
    return [json.loads(line)["frame_id"] for line in (folder / "selected_frames.jsonl").read_text().splitlines()]


def test_ceal_review_writes_the_recording_and_reports_time_and_size_per_frame(closed_round, tmp_path, monkeypatch,
                                                                              capsys):
    from ceal_pipeline.cli import main

    _, _, resources = closed_round
    monkeypatch.setenv("CEAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CEAL_OUTBOX", resources["exporter"].outbox)
    monkeypatch.setenv("CEAL_CATALOG_DIR", resources["frame_source"].catalog_dir)
    monkeypatch.setenv("CEAL_HISTORY_PATH", resources["history"].path)
    monkeypatch.setenv("CEAL_SHARD_DIR", resources["history"].shard_dir)
    code = main(["review", "--round", "0", "--json"])
    with pytest.raises(SystemExit, match="round 7 has no export .*materialize vendor_export"):
        main(["review", "--round", "7"])

    line = json.loads(capsys.readouterr().out)
    assert code == 0 and line["path"] == str(tmp_path / "home" / "reviews" / "round-0000.rrd")
    assert line["frames"] == K and line["read_back"]["ranks"] == list(range(1, K + 1))
    for key in ("points", "pre_label_boxes", "uncertain_boxes", "camera_images"):
        assert line[key] == line["read_back"][key]
    assert line["candidates"] == len(line["read_back"]["candidate_ranks"]) == 5
    assert line["seconds_per_frame"] == pytest.approx(line["seconds"] / (K + 5))
    assert line["bytes_per_frame"] == pytest.approx(Path(line["path"]).stat().st_size / (K + 5))
