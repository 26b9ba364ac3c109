"""Partitions of the acquisition assets, defined once and imported everywhere.

``candidate_shards`` holds one key per (round, shard) of a drawn candidate pool,
``r0003-s007``: hundreds to thousands of keys over the life of a deployment,
never one per frame. ``candidate_pool`` adds a round's keys when it draws the
pool; the scoring sensor and the in-process round runner read them back.
"""

import dagster as dg

candidate_shards = dg.DynamicPartitionsDefinition(name="candidate_shards")
