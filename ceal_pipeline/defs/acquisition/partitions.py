"""Partitions of the acquisition assets, defined once and imported everywhere.

A round is a Dagster partition: ``acquisition_rounds`` holds one key per round,
``r0003``, and every asset of a round reads it from ``context.partition_key``;
nothing rediscovers "the current round" from files. The schedule (or the round
runner, or a person in the UI) adds the next round's key once.
``candidate_shards`` holds one key per (round, shard) of a drawn candidate
pool, ``r0003-s007``; ``candidate_pool`` adds a round's shard keys when it
publishes the pool. Hundreds to thousands of keys over the life of a
deployment, never one per frame.
"""

from __future__ import annotations

import re

import dagster as dg

acquisition_rounds = dg.DynamicPartitionsDefinition(name="acquisition_rounds")
candidate_shards = dg.DynamicPartitionsDefinition(name="candidate_shards")

_ROUND_KEY = re.compile(r"r(\d{4,})")
_SHARD_KEY = re.compile(r"r(\d{4,})-s(\d{3,})")


def round_partition_key(round_index: int) -> str:
    """``r0003``: the acquisition_rounds partition key of a round."""
    if round_index < 0:
        raise ValueError(f"rounds start at 0, got {round_index}")
    return f"r{round_index:04d}"


def parse_round_partition_key(key: str) -> int:
    """``"r0003"`` -> ``3``; a clear error for anything else."""
    match = _ROUND_KEY.fullmatch(key)
    if not match:
        raise ValueError(f"partition key {key!r} is not an acquisition round key like 'r0003'")
    return int(match.group(1))


def shard_partition_key(round_index: int, shard_index: int) -> str:
    """``r0003-s007``: the candidate_scores partition key of a shard."""
    return f"{round_partition_key(round_index)}-s{shard_index:03d}"


def parse_shard_partition_key(key: str) -> tuple[int, int]:
    """``"r0003-s007"`` -> ``(3, 7)``; a clear error for anything else."""
    match = _SHARD_KEY.fullmatch(key)
    if not match:
        raise ValueError(f"partition key {key!r} is not a candidate shard key like 'r0003-s007'")
    return int(match.group(1)), int(match.group(2))
