"""Specification: a score shard carries each frame's embedding (float16) for the selection stage,
read back by frame id, and the merge ingests the shard unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from ceal_pipeline.core.history import write_score_shard
from ceal_pipeline.core.history.shards import read_shard_embeddings
from ceal_pipeline_tests.history.conftest import frame_ids, provenance

IDS = frame_ids()


def test_a_shard_carries_each_frames_embedding_as_float16_and_still_ingests(history, tmp_path):
    vectors = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -7.5], [100.0, 0.0, 1.0]])
    path = write_score_shard(tmp_path / "s.parquet", IDS[:3], [1.0, 2.0, 3.0], round=1, shard=0, **provenance(),
                             embeddings=vectors)
    read = read_shard_embeddings(path)
    assert sorted(read) == sorted(IDS[:3])
    for frame_id, vector in zip(IDS[:3], vectors):
        assert read[frame_id].dtype == np.float16
        np.testing.assert_array_equal(read[frame_id], vector.astype(np.float16))
    assert list(read_shard_embeddings(path, [IDS[2]])) == [IDS[2]]
    assert history.ingest_score_shard(path, round=1, shard=0).n_events == 3


def test_a_shard_without_embeddings_reads_as_none_and_bad_embeddings_write_nothing(tmp_path):
    plain = write_score_shard(tmp_path / "plain.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance())
    assert read_shard_embeddings(plain) == {}
    with pytest.raises(ValueError, match=r"embeddings must be \(n=2, d\)"):
        write_score_shard(tmp_path / "s.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance(),
                          embeddings=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="float16's range"):
        write_score_shard(tmp_path / "s.parquet", IDS[:2], [1.0, 2.0], round=1, shard=0, **provenance(),
                          embeddings=np.array([[1.0], [1e6]]))
    assert not (tmp_path / "s.parquet").exists()
