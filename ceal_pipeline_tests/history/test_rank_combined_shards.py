"""Specification: a rank combination's shards carry each frame's terms, and the merge ranks them
over all of the round's shards, never within one: a frame's value is its place among the round's
candidates, whichever shard scored it."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ceal_pipeline.core.history import write_score_shard
from ceal_pipeline.core.history.errors import ShardConflict, ShardFileError
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline_tests.history.conftest import frame_ids, provenance

IDS = frame_ids()
WEIGHTS = {"localization": 1.0, "heatmap": 2.0}
# Six candidates in draw order; shard 0 holds the first three, shard 1 the rest.
LOCALIZATION = np.array([9.0, 7.0, 0.0, 21.0, 0.0, 12.0])
HEATMAP = np.array([0.31, 0.40, 0.35, 0.30, 0.38, 0.33])


def write_shards(tmp_path, shards=(0, 1), weights=WEIGHTS, **overrides):
    paths = {}
    for shard in shards:
        part = slice(3 * shard, 3 * shard + 3)
        terms = {"localization": LOCALIZATION[part], "heatmap": HEATMAP[part]}
        within = rank_normalised_combination(terms, weights)  # what the worker can compute alone
        paths[shard] = write_score_shard(tmp_path / f"s{shard}.parquet", IDS[part], within, round=1, shard=shard,
                                         **provenance(acquisition_fn="localization_and_heatmap_ranks"),
                                         terms=terms, term_weights=weights, **overrides)
    return paths


def test_the_shard_stores_each_frames_terms_and_their_weights(tmp_path):
    path = write_shards(tmp_path, shards=(0,))[0]
    table = pq.read_table(path)
    np.testing.assert_array_equal(table.column("term_localization").to_numpy(), LOCALIZATION[:3])
    np.testing.assert_array_equal(table.column("term_heatmap").to_numpy(), HEATMAP[:3])
    assert b'"term_weights": {"localization": 1.0, "heatmap": 2.0}' in pq.read_metadata(path).metadata[b"ceal"]


def test_the_merge_ranks_the_terms_over_every_shard_of_the_round(history, tmp_path):
    history.save_candidate_pool(1, frame_ids=IDS[:6], n_shards=2)
    paths = write_shards(tmp_path)
    results = history.ingest_score_shards(paths, round=1)
    assert [r.n_events for r in results] == [3, 3]
    # Hand-computed: localization ranks 3, 2, 0.5, 5, 0.5, 4 and heatmap ranks 1, 5, 3, 0, 4, 2 (of 0..5),
    # each over 5, heatmap twice: the place of each frame among all six candidates.
    expected = (np.array([3, 2, 0.5, 5, 0.5, 4]) + 2 * np.array([1, 5, 3, 0, 4, 2])) / 5
    stored = history.round_scores(1)
    by_id = dict(zip(stored.frame_ids, stored.scores))
    np.testing.assert_allclose([by_id[f] for f in IDS[:6]], expected)
    # The worker of shard 0 wrote ranks among its own three frames (1, 2.5, 1): frames 0 and 2 tied there,
    # among the whole round frame 2 is ahead (1.3 against 1.0).
    written = pq.read_table(paths[0]).column("score").to_numpy()
    np.testing.assert_allclose(written, [1.0, 2.5, 1.0])
    assert by_id[IDS[2]] > by_id[IDS[0]]
    # Ingesting the same files again is the documented no-op, ranks and all.
    assert not any(r.ingested for r in history.ingest_score_shards(paths, round=1))


def test_one_shard_of_a_ranked_round_alone_is_refused_and_nothing_is_written(history, tmp_path):
    history.save_candidate_pool(1, frame_ids=IDS[:6], n_shards=2)
    paths = write_shards(tmp_path)
    with pytest.raises(ShardConflict, match="ingested together, not shards \\[0\\] alone; run merged_scores"):
        history.ingest_score_shard(paths[0], round=1, shard=0)
    assert len(history.round_scores(1).scores) == 0


def test_shards_with_other_weights_or_without_terms_do_not_mix(history, tmp_path):
    history.save_candidate_pool(1, frame_ids=IDS[:6], n_shards=2)
    paths = write_shards(tmp_path, shards=(0,))
    paths.update(write_shards(tmp_path, shards=(1,), weights={"localization": 1.0, "heatmap": 1.0}))
    with pytest.raises(ShardFileError, match="mix rank-combination terms and weights"):
        history.ingest_score_shards(paths, round=1)
    paths[1] = write_score_shard(tmp_path / "plain.parquet", IDS[3:6], [1.0, 2.0, 3.0], round=1, shard=1,
                                 **provenance(acquisition_fn="localization_and_heatmap_ranks"))
    with pytest.raises(ShardFileError, match="mix rank-combination terms"):
        history.ingest_score_shards(paths, round=1)
    assert len(history.round_scores(1).scores) == 0


def test_terms_without_weights_or_bad_terms_write_nothing(tmp_path):
    target = tmp_path / "s.parquet"
    with pytest.raises(ValueError, match="terms and term_weights together"):
        write_score_shard(target, IDS[:3], [1.0, 2.0, 3.0], round=1, shard=0, **provenance(),
                          terms={"heatmap": HEATMAP[:3]})
    with pytest.raises(ValueError, match=r"term 'heatmap' must be \(3,\) finite values"):
        write_score_shard(target, IDS[:3], [1.0, 2.0, 3.0], round=1, shard=0, **provenance(),
                          terms={"heatmap": [0.1, np.nan, 0.2]}, term_weights={"heatmap": 1.0})
    assert not target.exists()


def test_a_shard_whose_footer_lost_its_weights_is_refused_with_the_fix(history, tmp_path):
    path = write_shards(tmp_path, shards=(0,))[0]
    table = pq.read_table(path).replace_schema_metadata({b"ceal": b'{"round": 1, "shard": 0}'})
    pq.write_table(table, path)
    with pytest.raises(ShardFileError, match="term columns \\['heatmap', 'localization'\\] but footer "
                                             "term_weights None.*rescore_existing"):
        history.ingest_score_shard(path, round=1, shard=0)
