"""Opening a round: draw its candidate pool (:mod:`ceal_pipeline.core.round`) and record it in the history.

One call for the ``candidate_pool`` asset. A round whose pool was drawn before is
resumed as the history recorded it (same pool, same parameters); a new one is
drawn from the unlabeled pool's latest scores, started with its seed and
parameters, and saved with its shard split, in that order, so a kill between two
writes leaves a round the next run completes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ceal_pipeline.core import round as algorithm
from ceal_pipeline.core.seeding import derive_seed


class RoundNotDrawable(ValueError):
    """The round's parameters cannot draw a pool from this unlabeled pool (empty pool, bad shard size)."""


@dataclass(frozen=True)
class OpenedRound:
    """A round's saved candidate pool (a ``StoredCandidatePool``), the parameters it records,
    whether it was drawn before (``reused``) and, when drawn now, the latest scores of the
    unlabeled pool it was drawn from."""

    pool: Any
    parameters: dict[str, Any]
    reused: bool
    unlabeled_scores: np.ndarray | None


def _prior(value: str | float) -> str | float:
    """A recorded prior: a named rule or a number (recorded as its text)."""
    try:
        return float(value)
    except ValueError:
        return value


def open_round(store, round_index: int, parameters: Mapping[str, Any], model_version: str,
               shortfall: Callable[[np.ndarray], str | None] | None = None) -> OpenedRound:
    """Open (or resume) round ``round_index`` in ``store`` (an ``AcquisitionHistory``) with the
    round ``parameters`` (``ceal.yaml``'s ``round`` fields as recorded) and the detector
    ``model_version`` whose scores the round selects from. ``shortfall(drawn frame keys)``
    says why the drawn pool cannot give the round's K (None: it can); it is asked before
    anything is recorded, so a K the round cannot meet fails now, not at selection.

    Raises:
        RoundNotDrawable: no pool can be drawn with these parameters.
        RoundConflict: the round was started before with other parameters.
    """
    reused = store.has_candidate_pool(round_index)
    scores = None
    if not reused:
        pool = store.unlabeled_pool()
        # Every round parameter is recorded: the round's shards, selection and export read them back.
        recorded = {**parameters, "unlabeled_frames": len(pool)}
        started = time.perf_counter()
        try:
            drawn = algorithm.draw_candidate_pool(
                pool.frame_keys, pool.scores, round_index=round_index, run_seed=parameters["run_seed"],
                temperature=parameters["temperature"], fraction=parameters["pool_fraction"],
                count=parameters["pool_count"] if parameters["pool_count"] > 0 else None,
                normalisation=parameters["normalisation"], prior=_prior(parameters["prior"]),
                round_zero_mode=parameters["round_zero_mode"],
            )
            n_shards = algorithm.shard_count(len(drawn), parameters["shard_size"])
        except ValueError as exc:
            raise RoundNotDrawable(str(exc)) from exc
        sampling_s = time.perf_counter() - started
        why = shortfall(drawn.members) if shortfall is not None else None
        if why:
            raise RoundNotDrawable(why)
        seed = drawn.seed
        if seed is None:  # a backfill draws nothing, but the round still records a seed
            seed = derive_seed(parameters["run_seed"], round_index, "candidate_pool")
        store.start_round(round_index, seed=seed, parameters={**recorded, "seed": seed, "full_pool": drawn.backfill})
        store.save_candidate_pool(round_index, frame_keys=drawn.members, n_shards=n_shards, seed=seed,
                                  sampling_s=sampling_s)
        scores = pool.scores
    store.record_round_model(round_index, model_version)
    return OpenedRound(store.candidate_pool(round_index), store.round_parameters(round_index), reused, scores)
