"""Specification: a score shard carries why each frame scored what it did, and the merge still
ingests it unchanged (the explanation stays in the file for the UI and the export)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ceal_pipeline.core.frame_explanation import FrameObjects, explain_frame
from ceal_pipeline.core.history import read_shard_explanations, write_score_shard
from ceal_pipeline.core.history.shards import EXPLANATION_COLUMNS
from ceal_pipeline_tests.core.test_frame_explanation import CLASSES, hand_built_objects, no_objects
from ceal_pipeline_tests.history.conftest import frame_ids, provenance, table_counts

IDS = frame_ids()


def explained(objects: FrameObjects, at_empty_floor: bool = False):
    return explain_frame(objects, CLASSES, acquisition_fn="localization_entropy", aggregate="mean",
                         at_empty_floor=at_empty_floor)


def test_a_score_shard_carries_each_frames_explanation_and_still_ingests(history, tmp_path):
    explanations = [explained(hand_built_objects()), explained(no_objects(), at_empty_floor=True),
                    explained(hand_built_objects())]
    path = write_score_shard(tmp_path / "s000.parquet", IDS[:3], [-6.5, -25.5, -9.0], round=1, shard=0,
                             facts={"forward_passes": 30}, explanations=explanations, **provenance())

    schema = pq.read_schema(path)
    assert set(EXPLANATION_COLUMNS) <= set(schema.names)
    assert json.loads(schema.metadata[b"ceal"]) == {"forward_passes": 30, "round": 1, "shard": 0,
                                                    "model_version": "detector-r0"}
    assert read_shard_explanations(path) == dict(zip(IDS[:3], explanations))
    assert read_shard_explanations(path, [IDS[1]]) == {IDS[1]: explanations[1]}
    assert read_shard_explanations(path)[IDS[1]].at_empty_floor

    result = history.ingest_score_shard(path, round=1, shard=0)
    assert result.ingested and result.n_events == 3
    np.testing.assert_allclose(history.round_scores(1).scores, [-6.5, -25.5, -9.0])


def test_the_same_scores_with_and_without_explanations_ingest_as_the_same_shard(history, tmp_path):
    plain = write_score_shard(tmp_path / "plain.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance())
    rich = write_score_shard(tmp_path / "rich.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance(),
                             explanations=[explained(hand_built_objects())] * 2)
    history.ingest_score_shard(plain, round=1, shard=0)
    assert not history.ingest_score_shard(rich, round=1, shard=0).ingested


def test_a_shard_without_explanations_reads_as_unexplained(tmp_path):
    path = write_score_shard(tmp_path / "s.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance())
    assert read_shard_explanations(path) == {}


def test_a_shard_needs_one_explanation_per_frame_and_writes_nothing_otherwise(history, tmp_path):
    before = table_counts(history)
    with pytest.raises(ValueError, match="1 explanations for 2 frames"):
        write_score_shard(tmp_path / "s.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance(),
                          explanations=[explained(no_objects())])
    with pytest.raises(TypeError, match="explanation 0 is a dict"):
        write_score_shard(tmp_path / "s.parquet", IDS[:1], [1.0], round=1, shard=0, **provenance(),
                          explanations=[{"n_detections": 0}])
    assert not (tmp_path / "s.parquet").exists()
    assert table_counts(history) == before
