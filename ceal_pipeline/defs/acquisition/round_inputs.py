"""What a round's later steps need from its opening: its detector and its published pool.

One place for the lookup and for the error that names the partition to
materialize first; the pool step, the shards, the merge and the selection call it.
"""

from ceal_pipeline.defs.acquisition.failures import permanent_failure
from ceal_pipeline.defs.acquisition.shard_exchange import PublishedPool, ShardExchange
from ceal_pipeline.defs.resources import ModelStoreResource


def round_model(model_store: ModelStoreResource, round_index: int):
    """The detector that scores (and whose scores select) round ``round_index``."""
    model = model_store.published_for_round(round_index)
    if model is None:
        raise permanent_failure(
            f"round {round_index} has no trained detector in {model_store.model_dir}; "
            f"materialize the detector asset for partition r{round_index:04d} (job nightly_acquisition) first"
        )
    return model


def require_published_pool(exchange: ShardExchange, round_index: int) -> PublishedPool:
    pool = exchange.published_pool(round_index)
    if pool is None:
        raise permanent_failure(
            f"{exchange.pool_path(round_index)}: round {round_index} has no published candidate pool; "
            f"materialize candidate_pool for partition r{round_index:04d} (job nightly_acquisition) first"
        )
    return pool
