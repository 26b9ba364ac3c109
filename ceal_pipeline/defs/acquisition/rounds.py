"""Which acquisition round a run works on.

A round *opens* when its candidate pool is drawn and *closes* when its export
is in the outbox. So:

- the assets that open a round (``detector``, ``candidate_pool``) work on the
  open round if there is one (a killed round resumes where it stopped), else on
  ``last closed + 1`` (0 at first);
- the assets after the pool (scores, merge, pruning, selection, export) work on
  the latest round that has a pool; re-running them after the round closed
  reproduces the same selection and leaves the single export untouched.

The run tag ``ceal/round`` pins a round explicitly (e.g. to re-run round 3).
Both rules read files only (pool manifests, export folders), never DuckDB, so
sensors can evaluate them while a writer holds the history.
"""

from __future__ import annotations

from collections.abc import Mapping

from ceal_pipeline.defs.acquisition.config import ROUND_TAG
from ceal_pipeline.defs.acquisition.shard_store import ShardStore
from ceal_pipeline.export import export_folder


def _pinned_round(tags: Mapping[str, str] | None) -> int | None:
    if not tags or ROUND_TAG not in tags:
        return None
    value = tags[ROUND_TAG]
    try:
        round_index = int(value)
    except ValueError:
        raise ValueError(f"run tag {ROUND_TAG}={value!r} is not a round number; use e.g. {ROUND_TAG}=3") from None
    if round_index < 0:
        raise ValueError(f"run tag {ROUND_TAG}={value!r}: rounds start at 0")
    return round_index


def is_round_closed(outbox: str, round_index: int) -> bool:
    """True once the round's export folder is in the outbox."""
    return export_folder(outbox, round_index).is_dir()


def opening_round(shards: ShardStore, outbox: str, tags: Mapping[str, str] | None = None) -> int:
    """The round a new (or resumed) nightly run works on."""
    pinned = _pinned_round(tags)
    if pinned is not None:
        return pinned
    rounds = shards.rounds()
    if not rounds:
        return 0
    last = rounds[-1]
    return last + 1 if is_round_closed(outbox, last) else last


def current_round(shards: ShardStore, tags: Mapping[str, str] | None = None) -> int:
    """The round whose pool the scoring, merge, selection and export steps work on."""
    pinned = _pinned_round(tags)
    if pinned is not None:
        return pinned
    rounds = shards.rounds()
    if not rounds:
        raise FileNotFoundError(
            f"{shards.root}: no candidate pool has been drawn yet; materialize candidate_pool "
            "(job nightly_acquisition) first"
        )
    return rounds[-1]
