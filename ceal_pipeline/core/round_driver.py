"""One CEAL round, Algorithm 1's loop body, for every caller: draw, score, prune, select.

:func:`acquire` runs one round in process: draw the candidate pool
(:func:`ceal_pipeline.core.round.draw_candidate_pool`, or the whole unlabeled
pool, or a random batch), score it (the caller's ``score``), prune (the
caller's ``prune``), and :func:`ceal_pipeline.core.round.select` (eligibility,
then :mod:`ceal_pipeline.core.selection`). :func:`run_rounds` is the loop
around it: acquire, label, train, record, round after round.

The MNIST / CIFAR-10 benchmark (``validation/protocol.py``) runs its rounds
with :func:`run_rounds`; the detection benchmark calls :func:`acquire` per round.
The Dagster pipeline runs the same steps, one asset each, because a round
spans several runs (the shards score on GPU workers): ``candidate_pool`` calls
:func:`~ceal_pipeline.core.round.draw_candidate_pool`, ``candidate_scores`` scores,
``pruned_frames`` prunes, and ``selected_batch`` calls
:func:`~ceal_pipeline.core.round.select`, the step a selection rule plugs into.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ceal_pipeline.core.round import draw_candidate_pool, select
from ceal_pipeline.core.seeding import derive_seed


class RoundStrategy(Protocol):
    """What :func:`acquire` needs of a strategy (``validation.strategies.Strategy`` is one):
    ``kind`` is ``"random"``, ``"full_pool"`` or ``"ceal"``; a CEAL strategy's candidate pool
    is ``candidate_pool_size`` items or ``candidate_pool_fraction`` of the unlabeled pool;
    ``pruning``: the caller prunes persistently low items each round."""

    name: str
    kind: str
    candidate_pool_size: int | None
    candidate_pool_fraction: float | None
    pruning: bool


@dataclass(frozen=True)
class Acquisition:
    """What one acquisition step chose and what it cost.

    ``selected`` and ``scored`` are indices into the pool; ``scores`` aligns with
    ``scored``; ``candidate_seed`` is the seed of the random draw (the candidate
    pool or the random batch), None when nothing random was drawn.
    ``scoring_s`` covers the MC-Dropout passes, ``selection_s`` the sampling,
    pruning and top-k (seconds); ``pruned`` the indices pruned this round.
    """

    selected: np.ndarray
    scored: np.ndarray
    scores: np.ndarray
    candidate_seed: int | None
    scoring_s: float
    selection_s: float
    pruned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


#: ``(pool indices sorted ascending) -> acquisition scores`` for the current model.
ScoreFunction = Callable[[np.ndarray], np.ndarray]
#: ``(freshly scored pool indices, their scores) -> pool indices pruned this round``: the
#: caller records the fresh scores in its history and applies ``core.pruning``'s rule.
PruneFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def acquire(
    strategy: RoundStrategy,
    *,
    unlabeled: np.ndarray,
    latest_scores: np.ndarray,
    k: int,
    score: ScoreFunction,
    run_seed: int,
    round_index: int,
    temperature: float,
    normalisation: str = "rank",
    prior: str = "optimistic",
    backfill_first_round: bool = True,
    prune: PruneFunction | None = None,
    sequence_ids: np.ndarray | None = None,
    per_sequence_cap: int | None = None,
) -> Acquisition:
    """Choose ``k`` items to label from ``unlabeled`` (pool indices, already without
    labeled and previously pruned items).

    ``latest_scores`` is the acquisition history over the whole pool (NaN =
    never scored); this function only reads it, the caller writes the fresh
    ``scores`` back. Random draws are seeded from
    ``derive_seed(run_seed, round_index, ...)``; ``temperature``,
    ``normalisation`` and ``prior`` shape the CEAL candidate-pool softmax (see
    :func:`ceal_pipeline.core.sampling.sample_candidate_pool`). ``prune`` is
    called for a strategy with ``pruning`` after scoring; what it returns
    cannot be bought this round. ``sequence_ids`` (over the whole pool) and
    ``per_sequence_cap`` apply the pipeline's per-sequence cap to the top-k.
    """
    unlabeled = np.sort(np.asarray(unlabeled, dtype=np.int64))
    if not 0 < k <= len(unlabeled):
        raise ValueError(f"round {round_index}: cannot acquire {k} images from {len(unlabeled)} unlabeled ones; "
                         "lower acquire_per_round or the number of rounds")
    if strategy.kind == "random":
        seed = derive_seed(run_seed, round_index, "random_acquisition")
        start = time.perf_counter()
        chosen = np.random.default_rng(seed).choice(len(unlabeled), size=k, replace=False)
        empty = np.zeros(0, dtype=np.int64)
        return Acquisition(np.sort(unlabeled[chosen]), empty, np.zeros(0), seed, 0.0, time.perf_counter() - start)

    if strategy.pruning and prune is None:
        raise ValueError(f"strategy {strategy.name!r} prunes, but no prune function was given")
    start = time.perf_counter()
    seed = None
    if strategy.kind == "ceal":
        # The pipeline's round rule (core.round): backfill when nothing is scored yet, else a candidate pool.
        drawn = draw_candidate_pool(
            unlabeled, latest_scores[unlabeled], round_index=round_index, run_seed=run_seed,
            temperature=temperature, count=strategy.candidate_pool_size,
            fraction=strategy.candidate_pool_fraction, normalisation=normalisation,
            prior=prior, round_zero_mode="full_pool" if backfill_first_round else "prior",
        )
        candidates, seed = drawn.members.astype(np.int64), drawn.seed
    else:
        candidates = unlabeled
    sampling_s = time.perf_counter() - start

    # Scoring in ascending index order makes the MC-Dropout masks of an image
    # independent of how the candidates were drawn, so CEAL with m >= N scores
    # exactly like the full pool.
    start = time.perf_counter()
    scores = np.asarray(score(candidates), dtype=np.float64)
    scoring_s = time.perf_counter() - start
    if scores.shape != candidates.shape or not np.isfinite(scores).all():
        raise ValueError(f"strategy {strategy.name!r}, round {round_index}: the score function returned "
                         f"{scores.shape} values (finite: {np.isfinite(scores).all()}) for {len(candidates)} images")
    start = time.perf_counter()
    pruned = np.zeros(0, dtype=np.int64)
    if strategy.pruning:
        pruned = np.sort(np.asarray(prune(candidates, scores), dtype=np.int64))
    # The pipeline's select step (eligibility, then core.selection): candidates come from the
    # unlabeled pool, so only what was pruned this round (after scoring) drops out here.
    chosen = select(candidates, scores, k, round_index=round_index, pruned={str(i) for i in pruned},
                    sequences_of=None if sequence_ids is None else lambda ids: np.asarray(sequence_ids)[ids],
                    per_sequence_cap=per_sequence_cap)
    selected = np.asarray(chosen.frame_ids, dtype=np.int64)
    selection_s = sampling_s + time.perf_counter() - start
    return Acquisition(np.sort(selected), candidates, scores, seed, scoring_s, selection_s, pruned)


def run_rounds(
    rounds: range,
    labeled: np.ndarray,
    pool_size: int,
    *,
    acquire_round: Callable[[int, np.ndarray], Acquisition],
    train: Callable[[np.ndarray, int], Any],
    on_round: Callable[[int, np.ndarray, np.ndarray, Acquisition, Any], None],
) -> np.ndarray:
    """Algorithm 1's loop over pool indices ``0 .. pool_size - 1``: for each round, acquire
    from the unlabeled items (``acquire_round(round, unlabeled)``: usually :func:`acquire`
    with the model trained last), label what it selected, ``train(labeled, round)``, and
    report ``on_round(round, unlabeled, labeled, acquisition, trained)``. Returns the labeled indices."""
    labeled = np.asarray(labeled)
    for round_index in rounds:
        unlabeled = np.setdiff1d(np.arange(pool_size), labeled)
        acquisition = acquire_round(round_index, unlabeled)
        labeled = np.union1d(labeled, acquisition.selected)
        on_round(round_index, unlabeled, labeled, acquisition, train(labeled, round_index))
    return labeled
