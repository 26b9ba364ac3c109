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

import dagster as dg

# The keys' format is the core's (the shard exchange names shards by it too).
from ceal_pipeline.core.round import (  # noqa: F401 (imported from here by the assets)
    parse_round_partition_key,
    parse_shard_partition_key,
    round_partition_key,
    shard_partition_key,
)

acquisition_rounds = dg.DynamicPartitionsDefinition(name="acquisition_rounds")
candidate_shards = dg.DynamicPartitionsDefinition(name="candidate_shards")
