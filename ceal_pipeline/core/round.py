"""Algorithm 1's decisions for one acquisition round, in one place.

The Dagster assets (``defs/acquisition``) and the validation strategies
(``validation/strategies.py``) both call these functions, so the benchmark
measures the product's rules rather than a second copy of them:

- :func:`backfills`: whether a round scores the whole unlabeled pool (the
  paper's round 0) instead of a candidate pool;
- :func:`draw_candidate_pool`: the round's candidate pool, Gumbel-top-k over
  the tempered softmax of each frame's historical acquisition value, seeded
  from ``(run seed, round)``;
- :func:`shard_of_positions`: how the pool is split into scoring shards;
- :func:`selectable`: which freshly scored candidates may be bought;
- :func:`seed_set`: the initial labeled pool drawn from annotated frames.

Pure functions over arrays: no Dagster, no torch, no storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ceal_pipeline.core.sampling import sample_candidate_pool
from ceal_pipeline.core.seeding import derive_seed

#: Round 0: score the whole unlabeled pool once (the paper's backfill) or sample from the prior.
RoundZeroMode = Literal["full_pool", "prior"]
ROUND_ZERO_MODES: tuple[str, ...] = get_args(RoundZeroMode)


def backfills(round_zero_mode: str, latest_scores: np.ndarray) -> bool:
    """True when the round scores every unlabeled frame instead of a candidate pool.

    That is the paper's round 0: with ``round_zero_mode="full_pool"``, the first
    acquisition, when no unlabeled frame has a historical score yet (all NaN),
    scores the whole pool once so that later rounds sample from real values.
    With ``"prior"`` every round, the first included, samples from the prior.
    """
    if round_zero_mode not in ROUND_ZERO_MODES:
        raise ValueError(f"round_zero_mode {round_zero_mode!r}: use one of {', '.join(ROUND_ZERO_MODES)}")
    return round_zero_mode == "full_pool" and bool(np.isnan(np.asarray(latest_scores, dtype=np.float64)).all())


@dataclass(frozen=True)
class RoundPool:
    """A round's candidate pool: ``members`` (the identifiers passed in, sorted
    ascending so that shard contents depend on the pool, not on the draw
    order), the ``seed`` it was drawn with (None for a backfill, which draws
    nothing) and whether it is the whole unlabeled pool (``backfill``)."""

    members: np.ndarray
    seed: int | None
    backfill: bool

    def __len__(self) -> int:
        return len(self.members)


def draw_candidate_pool(
    members: np.ndarray,
    latest_scores: np.ndarray,
    *,
    round_index: int,
    run_seed: int,
    temperature: float,
    fraction: float | None = None,
    count: int | None = None,
    normalisation: str = "rank",
    prior: str | float = "optimistic",
    round_zero_mode: str = "full_pool",
) -> RoundPool:
    """The candidate pool of round ``round_index`` from the unlabeled pool.

    ``members`` identify the unlabeled frames (frame keys, ids or pool indices)
    and ``latest_scores`` their historical acquisition values (NaN = never
    scored). The pool is ``count`` frames, or ``fraction`` of the unlabeled
    pool, capped at its size; see
    :func:`ceal_pipeline.core.sampling.sample_candidate_pool` for the
    normalisation, prior and temperature. The seed is
    ``derive_seed(run_seed, round_index, "candidate_pool")``.
    """
    members = np.asarray(members)
    latest_scores = np.asarray(latest_scores, dtype=np.float64)
    if members.shape != latest_scores.shape:
        raise ValueError(
            f"round {round_index}: {members.shape[0]} unlabeled frames but {latest_scores.shape[0]} historical scores"
        )
    if len(members) == 0:
        raise ValueError(f"round {round_index}: the unlabeled pool is empty: nothing is left to acquire")
    if backfills(round_zero_mode, latest_scores):
        return RoundPool(np.sort(members), None, True)
    seed = derive_seed(run_seed, round_index, "candidate_pool")
    if count is not None:
        count = min(int(count), len(members))
    drawn = sample_candidate_pool(
        members, latest_scores, temperature=temperature, fraction=None if count is not None else fraction,
        count=count, normalisation=normalisation, prior=prior, seed=seed,
    )
    return RoundPool(np.sort(np.asarray(drawn.frame_ids)), seed, False)


def shard_count(pool_size: int, shard_size: int) -> int:
    """Shards of at most ``shard_size`` frames that a pool of ``pool_size`` is split into."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1 frame, got {shard_size}")
    if pool_size < 1:
        raise ValueError(f"a candidate pool needs at least one frame to shard, got {pool_size}")
    return -(-pool_size // shard_size)


def shard_of_positions(pool_size: int, n_shards: int) -> np.ndarray:
    """The shard of each pool position: contiguous runs balanced to within one
    frame (``shard = position * n_shards // pool_size``), int32."""
    if not 1 <= n_shards <= pool_size:
        raise ValueError(f"n_shards must be between 1 and the pool size {pool_size}, got {n_shards}")
    return (np.arange(pool_size, dtype=np.int64) * n_shards // pool_size).astype(np.int32)


def selectable(
    candidates: np.ndarray,
    round_index: int,
    *,
    label_rounds: dict[str, int],
    pruned: set[str],
    awaiting_labels: set[str] = frozenset(),
) -> np.ndarray:
    """Boolean mask of the freshly scored ``candidates`` that may be bought in round ``round_index``.

    A candidate is excluded when it was labeled in or before this round
    (``label_rounds``: frame id -> round its labels count from), when it is
    pruned, or when it was exported in an earlier round and its labels have
    not arrived yet (``awaiting_labels``): a frame is never paid for twice.
    """
    return np.fromiter(
        (
            label_rounds.get(f, round_index + 1) > round_index and f not in pruned and f not in awaiting_labels
            for f in (str(c) for c in candidates)
        ),
        dtype=bool,
        count=len(candidates),
    )


def seed_set(annotated: np.ndarray | list[str], count: int, run_seed: int) -> list[str]:
    """``count`` annotated frames drawn reproducibly as the initial labeled pool (sorted ids).

    The draw depends on the sorted ids and ``derive_seed(run_seed, 0, "seed_set")`` only.
    """
    candidates = sorted(str(f) for f in annotated)
    if count > len(candidates):
        raise ValueError(
            f"a seed set of {count} frames was asked for but only {len(candidates)} annotated train frames exist; "
            "lower seed_labeled or annotate more frames"
        )
    rng = np.random.default_rng(derive_seed(run_seed, 0, "seed_set"))
    return sorted(candidates[i] for i in rng.choice(len(candidates), size=count, replace=False))
