"""What a round's later steps need from its opening: its detector, its version and its published pool.

One place for the lookup and for the error that names the partition to
materialize first; the pool step, the shards, the merge and the selection call it.
"""

from ceal_pipeline.defs.acquisition.failures import permanent_failure
from ceal_pipeline.core.history.shards import PublishedPool, ShardExchange
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


def round_model_version(store, model_store: ModelStoreResource, round_index: int) -> str:
    """The detector version round ``round_index`` records in the history (its owner). A round
    whose pool was drawn before history schema 5 records its published detector now."""
    version = store.round_model_version(round_index)
    if version is None:
        version = round_model(model_store, round_index).version
        store.record_round_model(round_index, version)
    return version


def require_published_pool(exchange: ShardExchange, round_index: int) -> PublishedPool:
    pool = exchange.published_pool(round_index)
    if pool is None:
        raise permanent_failure(
            f"{exchange.pool_path(round_index)}: round {round_index} has no published candidate pool; "
            f"materialize candidate_pool for partition r{round_index:04d} (job nightly_acquisition) first"
        )
    return pool
