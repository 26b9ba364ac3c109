"""Which round a run works on and which shards are still to score (files only, no Dagster run)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceal_pipeline.defs.acquisition.config import ROUND_TAG
from ceal_pipeline.defs.acquisition.rounds import current_round, opening_round
from ceal_pipeline.defs.acquisition.shard_store import (
    ShardStats,
    ShardStore,
    parse_shard_partition_key,
    shard_partition_key,
)
from ceal_pipeline.export import ExportedFrame, write_vendor_export


@given(round_index=st.integers(0, 99_999), shard_index=st.integers(0, 99_999))
def test_shard_partition_keys_round_trip_and_sort_by_round_then_shard(round_index, shard_index):
    key = shard_partition_key(round_index, shard_index)
    assert parse_shard_partition_key(key) == (round_index, shard_index)
    if round_index < 10_000 and shard_index < 1_000:
        assert key < shard_partition_key(round_index, shard_index + 1) < shard_partition_key(round_index + 1, 0)


@pytest.mark.parametrize("key", ["r3-s7", "r0003s007", "round-3", "r0003-s007 ", "../r0003-s007"])
def test_malformed_partition_keys_are_rejected(key):
    with pytest.raises(ValueError, match="not a candidate shard key"):
        parse_shard_partition_key(key)


def _pool(store: ShardStore, round_index: int, shards: int = 2) -> None:
    store.write_pool(round_index, [[f"f{round_index}-{s}-{i}" for i in range(3)] for s in range(shards)], {})


def test_a_round_opens_with_its_pool_and_closes_with_its_export(tmp_path):
    store, outbox = ShardStore(tmp_path / "shards"), tmp_path / "outbox"
    assert opening_round(store, outbox) == 0
    with pytest.raises(FileNotFoundError, match="no candidate pool"):
        current_round(store)

    _pool(store, 0)
    assert opening_round(store, outbox) == 0  # open: a new nightly run resumes it
    assert current_round(store) == 0

    write_vendor_export(outbox, 0, "v1", [ExportedFrame("f0-0-0")])
    assert opening_round(store, outbox) == 1  # closed: the next night opens round 1
    assert current_round(store) == 0  # re-running selection still means round 0
    assert opening_round(store, outbox, {ROUND_TAG: "0"}) == 0
    with pytest.raises(ValueError, match="ceal/round"):
        opening_round(store, outbox, {ROUND_TAG: "last"})


def test_a_shard_is_scored_only_with_its_parquet_and_the_rounds_model(tmp_path):
    store = ShardStore(tmp_path)
    _pool(store, 4, shards=3)
    assert store.missing_shards(4) == [0, 1, 2]

    store.write_stats(ShardStats(4, 0, "v1", frames=3, forward_passes=30, scoring_s=1.0))
    assert store.missing_shards(4) == [0, 1, 2]  # stats alone are not a commit
    store.scores_path(4, 0).write_bytes(b"parquet")
    store.scores_path(4, 1).write_bytes(b"parquet")
    store.write_stats(ShardStats(4, 1, "v0", frames=3, forward_passes=30, scoring_s=1.0))

    assert store.missing_shards(4) == [2]
    assert store.missing_shards(4, model_version="v1") == [1, 2]  # shard 1 was scored by another model
    assert store.pool_frames(4) == [f"f4-{s}-{i}" for s in range(3) for i in range(3)]
