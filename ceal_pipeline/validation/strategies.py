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

from dataclasses import dataclass

from ceal_pipeline.core.round_driver import Acquisition, PruneFunction, ScoreFunction, acquire

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


__all__ = ["SHORT_NAMES", "Acquisition", "PruneFunction", "ScoreFunction", "Strategy", "acquire", "paper_strategies"]
