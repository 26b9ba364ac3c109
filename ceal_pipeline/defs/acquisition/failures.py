"""Which failures are retried: only those that can heal.

- A configuration or data error (a bad ``ceal.yaml`` value, a dataset the
  source cannot read, K larger than the candidates, a missing upstream
  partition) fails its step once with the reason: :func:`permanent_failure`, a
  ``dg.Failure`` with ``allow_retries=False`` (no op retry) and a marker the
  sensors read, so they stop asking for that partition and say why in their
  tick's skip reason (:func:`permanent_failure_of`). Run retries are off for
  step failures (``dagster.yaml``: ``retry_on_asset_or_op_failure: false``).
- A run whose worker died (killed, out of memory) is retried by Dagster's run
  retries (``dagster.yaml``), and a shard that failed otherwise is requested
  again by the sensors, up to their attempt limit.
- The acquisition history locked by another process (DuckDB has one writer) or
  the frame catalog being ingested by another run is waited out inside the run:
  :func:`retry_when_busy` turns ``HistoryLocked`` / ``CatalogBusy`` into
  ``dg.RetryRequested``.
"""

from __future__ import annotations

import functools

import dagster as dg

from ceal_pipeline.catalog.ingest import CatalogBusy
from ceal_pipeline.core.history.connection import HistoryLocked

#: Failure metadata key that marks a failure no retry can heal.
PERMANENT = "ceal/permanent"
#: Retries of a step that found the history or the catalog busy, and the seconds between them.
BUSY_RETRIES = 3
BUSY_WAIT_S = 20


def permanent_failure(description: str) -> dg.Failure:
    """A failure that retrying cannot heal (configuration or data): fail once, with the reason."""
    return dg.Failure(description, allow_retries=False, metadata={PERMANENT: True})


def permanent_failure_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The reason a failed run ended with a permanent failure, or None (its failure may heal)."""
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        failure = record.dagster_event.step_failure_data.user_failure_data
        if failure is not None and PERMANENT in failure.metadata:
            return failure.description
    return None


def retry_when_busy(asset_fn):
    """Wrap an asset body: the history locked or the catalog ingested by another process is
    waited out (``BUSY_RETRIES`` step retries, ``BUSY_WAIT_S`` apart) instead of failing the run."""

    @functools.wraps(asset_fn)
    def body(*args, **kwargs):
        try:
            return asset_fn(*args, **kwargs)
        except (HistoryLocked, CatalogBusy) as exc:
            raise dg.RetryRequested(max_retries=BUSY_RETRIES, seconds_to_wait=BUSY_WAIT_S) from exc

    return body
