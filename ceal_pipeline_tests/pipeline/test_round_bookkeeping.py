"""Rounds are partition keys; the shard exchange says which shards are scored (no Dagster run)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceal_pipeline.core.history import write_score_shard
from ceal_pipeline.defs.acquisition.partitions import (
    acquisition_rounds,
    parse_round_partition_key,
    parse_shard_partition_key,
    round_partition_key,
    shard_partition_key,
)
from ceal_pipeline.defs.acquisition.round_status import is_exported, next_round
from ceal_pipeline.core.history.shards import ExchangeFileError, ShardExchange


@given(round_index=st.integers(0, 99_999), shard_index=st.integers(0, 99_999))
def test_shard_partition_keys_round_trip_and_sort_by_round_then_shard(round_index, shard_index):
    key = shard_partition_key(round_index, shard_index)
    assert parse_shard_partition_key(key) == (round_index, shard_index)
    assert parse_round_partition_key(round_partition_key(round_index)) == round_index
    if round_index < 10_000 and shard_index < 1_000:
        assert key < shard_partition_key(round_index, shard_index + 1) < shard_partition_key(round_index + 1, 0)
        assert key.startswith(round_partition_key(round_index) + "-")


@pytest.mark.parametrize("key", ["r3-s7", "r0003s007", "round-3", "r0003-s007 ", "../r0003-s007", "r0003-s007\n"])
def test_malformed_shard_partition_keys_are_rejected(key):
    with pytest.raises(ValueError, match="not a candidate shard key"):
        parse_shard_partition_key(key)


@pytest.mark.parametrize("key", ["r3", "0003", "r0003\n", "r-0001", "r0003-s001"])
def test_malformed_round_partition_keys_are_rejected(key):
    with pytest.raises(ValueError, match="not an acquisition round key"):
        parse_round_partition_key(key)


def _export(instance: dg.DagsterInstance, round_index: int) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization("vendor_export", partition=round_partition_key(round_index))
    )


def test_the_next_round_is_the_open_one_until_its_export_is_materialized():
    with dg.instance_for_test() as instance:
        assert next_round(instance) == (0, True)
        instance.add_dynamic_partitions(acquisition_rounds.name, [round_partition_key(0)])
        assert next_round(instance) == (0, False)  # open: a new nightly run resumes it
        _export(instance, 0)
        assert is_exported(instance, 0)
        assert next_round(instance) == (1, True)  # closed: the next night opens round 1
        instance.add_dynamic_partitions(acquisition_rounds.name, [round_partition_key(1)])
        assert next_round(instance) == (1, False) and not is_exported(instance, 1)


def _publish(exchange: ShardExchange, round_index: int, n_shards: int, version: str = "v1") -> list[str]:
    ids = [f"f{round_index}-{i}" for i in range(3 * n_shards)]
    shards = np.repeat(np.arange(n_shards), 3)
    exchange.publish_pool(round_index, np.array(ids, dtype=object), shards, n_shards, version)
    return ids


def _score(exchange: ShardExchange, round_index: int, shard: int, ids: list[str], version: str) -> None:
    write_score_shard(exchange.scores_path(round_index, shard), ids, np.linspace(0, 1, len(ids)), round=round_index,
                      shard=shard, model_version=version, acquisition_fn="test", run_id="run",
                      facts={"forward_passes": 10 * len(ids), "scoring_s": 1.5})


def test_a_shard_reads_only_its_own_frames_from_the_published_pool(tmp_path):
    exchange = ShardExchange(tmp_path)
    assert exchange.published_pool(4) is None
    ids = _publish(exchange, 4, n_shards=3)
    pool = exchange.published_pool(4)
    assert (pool.round_index, pool.n_shards, pool.frames, pool.model_version) == (4, 3, 9, "v1")
    assert pool.partition_keys == ["r0004-s000", "r0004-s001", "r0004-s002"]
    assert [exchange.shard_frames(4, s) for s in range(3)] == [ids[0:3], ids[3:6], ids[6:9]]


def test_a_shard_is_scored_once_its_parquet_names_the_rounds_detector(tmp_path):
    exchange = ShardExchange(tmp_path)
    ids = _publish(exchange, 4, n_shards=3)
    pool = exchange.published_pool(4)
    assert exchange.unscored_shards(pool) == [0, 1, 2]
    _score(exchange, 4, 0, ids[0:3], "v1")
    _score(exchange, 4, 1, ids[3:6], "v0")  # scored by another model: still to score
    assert exchange.unscored_shards(pool) == [1, 2]
    stats = exchange.shard_stats(4, 0)
    assert (stats.frames, stats.forward_passes, stats.scoring_s, stats.model_version) == (3, 30, 1.5, "v1")


def test_a_corrupt_exchange_file_is_named_with_the_fix(tmp_path):
    exchange = ShardExchange(tmp_path)
    _publish(exchange, 2, n_shards=1)
    exchange.scores_path(2, 0).write_bytes(b"not parquet")
    with pytest.raises(ExchangeFileError, match=r"s000\.parquet cannot be read as Parquet.*r0002-s000"):
        exchange.shard_stats(2, 0)
    exchange.pool_path(2).write_bytes(b"\x00" * 16)
    with pytest.raises(ExchangeFileError, match=r"pool\.parquet cannot be read.*candidate_pool for round 2"):
        exchange.published_pool(2)
