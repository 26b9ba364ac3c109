"""Acquisition strategies of the benchmarks: random, full-pool, and CEAL.

A strategy decides which unlabeled items (images, frames) to label next, given
a way to score them and the acquisition history (each item's latest score, NaN
if never scored). It is the benchmarks' version of one pipeline round and
reuses the functional core for every decision, in the pipeline's order:
:func:`ceal_pipeline.core.round.draw_candidate_pool` (the pipeline's own round
rule) draws the CEAL candidate pool (rank-normalised tempered softmax,
Gumbel-top-k); the candidates are scored; an optional pruning step (the
caller's :mod:`ceal_pipeline.core.pruning` rule over its history, as the
``pruned_frames`` asset runs before ``selected_batch``) removes persistently
low items; :func:`ceal_pipeline.core.round.selectable` drops those from the
candidates and :func:`ceal_pipeline.core.selection.select_top_k` takes the top
``k`` fresh scores, optionally with a per-sequence cap. The MNIST / CIFAR-10
benchmark names its strategies here (:meth:`Strategy.parse`); the detection
benchmark in :mod:`ceal_pipeline.validation.detection.strategies`.

- ``random``: ``k`` images uniformly without replacement; nothing scored.
- full pool (``entropy``, ``variation_ratios``, ``bald``): score every unlabeled
  image, take the top ``k``.
- CEAL (``ceal_<fn>_<m>``): score only a candidate pool of ``m`` images sampled
  from the history; the first acquisition scores the whole pool when
  ``backfill_first_round`` (the paper's round 0), since there is no history yet.
  With ``m`` at least the unlabeled count the candidate pool is the whole pool
  and CEAL *is* full-pool acquisition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ceal_pipeline.core.round import draw_candidate_pool, selectable
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.core.selection import select_top_k

#: Short strategy names -> acquisition function names of the core.
SHORT_NAMES: dict[str, str] = {
    "entropy": "predictive_entropy",
    "variation_ratios": "variation_ratios",
    "bald": "bald",
    "margin": "margin",
    "least_confidence": "least_confidence",
}


@dataclass(frozen=True)
class Strategy:
    """One acquisition strategy.

    ``kind`` is ``"random"``, ``"full_pool"`` or ``"ceal"``; ``acquisition_fn``
    the name of the acquisition function the benchmark's score function
    evaluates (a key of ``core.acquisition.ACQUISITION_FUNCTIONS`` or of
    ``core.detection_acquisition.DETECTION_ACQUISITION_FUNCTIONS``; None for
    random). A CEAL strategy's candidate pool is ``candidate_pool_size`` items
    (the paper's ``m``) or ``candidate_pool_fraction`` of the unlabeled pool
    (the pipeline's ``pool_fraction``, alpha); ``pruning`` says whether the
    caller prunes persistently low items each round.
    """

    name: str
    kind: str
    acquisition_fn: str | None = None
    candidate_pool_size: int | None = None
    candidate_pool_fraction: float | None = None
    pruning: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("random", "full_pool", "ceal"):
            raise ValueError(f"strategy {self.name!r} has unknown kind {self.kind!r}: use random, full_pool or ceal")
        if (self.kind == "random") != (self.acquisition_fn is None):
            raise ValueError(f"strategy {self.name!r}: random takes no acquisition function, the others need one")
        if self.kind == "ceal" and (self.candidate_pool_size is None) == (self.candidate_pool_fraction is None):
            raise ValueError(f"CEAL strategy {self.name!r} needs exactly one of candidate_pool_size and "
                             "candidate_pool_fraction")
        if self.pruning and self.kind == "random":
            raise ValueError(f"strategy {self.name!r}: random scores nothing, so it has nothing to prune")

    @classmethod
    def parse(cls, name: str) -> "Strategy":
        """``random``, ``entropy``, ``variation_ratios``, ``bald`` (any short name),
        or ``ceal_<short name>_<m>`` such as ``ceal_entropy_2500``."""
        if name == "random":
            return cls(name, "random")
        if name in SHORT_NAMES:
            return cls(name, "full_pool", SHORT_NAMES[name])
        if name.startswith("ceal_"):
            short, _, size = name[len("ceal_"):].rpartition("_")
            if short in SHORT_NAMES and size.isdigit() and int(size) > 0:
                return cls(name, "ceal", SHORT_NAMES[short], int(size))
        raise ValueError(
            f"unknown strategy {name!r}: use 'random', one of {sorted(SHORT_NAMES)} for full-pool acquisition, "
            "or 'ceal_<function>_<candidate pool size>' such as 'ceal_entropy_2500'"
        )


def paper_strategies(candidate_pool_sizes: tuple[int, ...] = (2500, 5000, 10000), bald: bool = True) -> list[str]:
    """The paper's strategy list: random, full-pool entropy and variation ratios,
    CEAL with each at every candidate pool size, and BALD (full pool) as an extra."""
    names = ["random", "entropy", "variation_ratios"]
    for short in ("entropy", "variation_ratios"):
        names += [f"ceal_{short}_{m}" for m in candidate_pool_sizes]
    if bald:
        names.append("bald")
    return names


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
#: ``(selectable pool indices, their scores, k) -> pool indices bought``: a selection
#: stage other than top-k (the detection benchmark's ``core.selection.select_batch``).
SelectFunction = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def acquire(
    strategy: Strategy,
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
    select: SelectFunction | None = None,
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
    ``select``, when given, replaces the top-k (and its cap) as the selection stage.
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
    # The pipeline's eligibility rule: candidates come from the unlabeled pool, so only
    # what was pruned this round (after scoring, before selection) drops out here.
    keep = selectable(candidates, round_index, label_rounds={}, pruned={str(i) for i in pruned})
    if select is not None:
        selected = np.asarray(select(candidates[keep], scores[keep], k), dtype=np.int64)
    else:
        sequences = None if sequence_ids is None else np.asarray(sequence_ids)[candidates[keep]]
        selected = np.asarray(select_top_k(candidates[keep], scores[keep], k, sequence_ids=sequences,
                                           per_sequence_cap=per_sequence_cap), dtype=np.int64)
    selection_s = sampling_s + time.perf_counter() - start
    return Acquisition(np.sort(selected), candidates, scores, seed, scoring_s, selection_s, pruned)
