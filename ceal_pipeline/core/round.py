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
- :func:`select`: the round's select step (eligibility, then
  :mod:`ceal_pipeline.core.selection`), what both the ``selected_batch`` asset
  and the benchmarks' round (:mod:`ceal_pipeline.core.round_driver`) call;
- :func:`selection_size`: K and the per-sequence cap of a (re-)run;
- :func:`plan_training`: reuse of the round's detector, warm start and epochs;
- :func:`round_ledger`: the round's compute ledger;
- :func:`seed_set`: the initial labeled pool drawn from annotated frames;
- :func:`round_partition_key` / :func:`shard_partition_key`: a round's and a
  shard's names (``r0003``, ``r0003-s007``), the Dagster partition keys.

Pure functions over arrays: no Dagster, no torch, no storage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np

from ceal_pipeline.core.ledger import ComputeLedger
from ceal_pipeline.core.round_feasibility import k_shortfall
from ceal_pipeline.core.sampling import sample_candidate_pool
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.core.selection import Selection as StageSelection
from ceal_pipeline.core.selection import SelectionCandidates, SelectionPolicy, select_batch

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


#: What the selection stage reads besides the fresh values, for the eligible candidates only:
#: ``(SelectionCandidates, labeled boxes per class or None, per-class AP or None)``.
StageInputs = tuple[SelectionCandidates, "np.ndarray | None", "np.ndarray | None"]


@dataclass(frozen=True)
class Selection:
    """What the select step bought: ``frame_ids`` best first, their ``scores`` and
    ``sequences`` (None without a sequence lookup), the fresh scores of every
    candidate it chose from (``eligible_scores``, of ``eligible_ids``), and the selection
    stage's own record (``stage``: which signal decided each pick, the estimated labeling cost)."""

    frame_ids: np.ndarray
    scores: np.ndarray
    sequences: np.ndarray | None
    eligible_scores: np.ndarray
    eligible_ids: np.ndarray
    stage: StageSelection

    @property
    def eligible(self) -> int:
        """How many candidates the selection chose from."""
        return len(self.eligible_scores)


def select(
    candidates: np.ndarray,
    scores: np.ndarray,
    k: int | None,
    *,
    round_index: int,
    label_rounds: Mapping[str, int] | None = None,
    pruned: set[str] = frozenset(),
    awaiting_labels: set[str] = frozenset(),
    sequences_of: Callable[[np.ndarray], np.ndarray] | None = None,
    per_sequence_cap: int | None = None,
    policy: SelectionPolicy | None = None,
    stage_inputs: Callable[[np.ndarray, np.ndarray, np.ndarray | None], StageInputs] | None = None,
) -> Selection:
    """The round's select step: the :func:`selectable` candidates, then the selection stage
    (:func:`ceal_pipeline.core.selection.select_batch`) over their fresh scores.

    Args:
        k: frames to buy; None when ``policy`` has a money budget that decides how many.
        sequences_of: maps eligible candidates to their sequences (asked once, eligible ones only).
        per_sequence_cap: at most this many frames per sequence (None or 0: no cap); it
            replaces the policy's own cap.
        policy: the round's :class:`SelectionPolicy` (None: ``topk``, today's top-K).
        stage_inputs: ``(eligible ids, their scores, their sequences) -> StageInputs``: the
            per-frame signals (class counts, embeddings, cuboids) and the labeled set's needs;
            None: the values alone.

    Raises:
        ValueError: ``k`` more than the eligible candidates can give (under the cap:
            :func:`~ceal_pipeline.core.round_feasibility.k_shortfall`'s sentence), or a budget
            that cannot be met.
    """
    candidates, scores = np.asarray(candidates), np.asarray(scores, dtype=np.float64)
    keep = selectable(candidates, round_index, label_rounds=label_rounds or {}, pruned=pruned,
                      awaiting_labels=awaiting_labels)
    eligible, eligible_scores = candidates[keep], scores[keep]
    sequences = None if sequences_of is None else np.asarray(sequences_of(eligible), dtype=object)
    if k is not None:  # the sentence candidate_pool fails with when the drawn pool falls short
        shortfall = k_shortfall(
            round_index, k, [""] * len(eligible) if sequences is None else [str(q) for q in sequences],
            0 if sequences is None else per_sequence_cap or 0, candidates="freshly scored selectable candidates",
        )
        if shortfall:
            raise ValueError(shortfall)
    policy = replace(SelectionPolicy() if policy is None else policy, per_sequence_cap=per_sequence_cap or None)
    if stage_inputs is None:
        stage_candidates, class_counts, class_ap = SelectionCandidates(eligible, eligible_scores, sequences), None, None
    else:
        stage_candidates, class_counts, class_ap = stage_inputs(eligible, eligible_scores, sequences)
    stage = select_batch(stage_candidates, policy, k=k, labeled_class_counts=class_counts, class_ap=class_ap)
    chosen = np.asarray(stage.frame_ids)
    position = {c: i for i, c in enumerate(eligible.tolist())}
    rows = np.fromiter((position[c] for c in chosen.tolist()), dtype=np.int64, count=len(chosen))
    return Selection(chosen, eligible_scores[rows], None if sequences is None else sequences[rows], eligible_scores,
                     eligible, stage)


def selection_size(
    recorded_k: int, recorded_cap: int, *, k: int | None = None, per_sequence_cap: int | None = None
) -> tuple[int, int]:
    """``(K, per-sequence cap)`` of a selection: the round's recorded values unless a re-run
    overrides them (None: the round's). Raises ValueError for K < 1 or a cap < 0."""
    k = recorded_k if k is None else k
    cap = recorded_cap if per_sequence_cap is None else per_sequence_cap
    if k < 1 or cap < 0:
        raise ValueError(f"K must be at least 1 and the per-sequence cap at least 0, got K={k}, cap={cap}")
    return k, cap


def labeled_fingerprint(frame_ids: Iterable[str]) -> str:
    """16 hex digits naming a labeled set (order-free): a detector trained on it is reusable."""
    return hashlib.sha256("\n".join(sorted(str(f) for f in frame_ids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingPlan:
    """How a round gets its detector: ``reuse`` the round's published one, or train for
    ``epochs`` (from the previous round's weights when ``warm_start``)."""

    reuse: bool
    warm_start: bool
    epochs: int


def plan_training(
    *,
    published: Mapping[str, Any] | None,
    pool_drawn: bool,
    fingerprint: str,
    has_previous: bool,
    warm_start: bool,
    epochs: int,
    fine_tune_epochs: int,
) -> TrainingPlan:
    """The detector step's decision. ``published`` is the metrics of the detector already
    published for this round (None: none yet). Once the round's pool is drawn its detector is
    fixed (its shards are scored by it); before, it is reused while the labeled set is the same
    (``fingerprint``, :func:`labeled_fingerprint`). A warm start (previous round's weights, when
    there are any) trains ``fine_tune_epochs`` (0: ``epochs``)."""
    if published is not None and (pool_drawn or published.get("labeled_fingerprint") == fingerprint):
        return TrainingPlan(reuse=True, warm_start=False, epochs=0)
    warm = warm_start and has_previous
    trained_epochs = fine_tune_epochs if warm and fine_tune_epochs > 0 else epochs
    return TrainingPlan(reuse=False, warm_start=warm, epochs=trained_epochs)


def round_ledger(
    round_index: int,
    *,
    unlabeled_frames: int,
    shards: Iterable[tuple[int, int, float]],
    training_s: float,
    selection_s: float,
    estimated_label_cost: float = 0.0,
) -> dict[str, int | float]:
    """The round's compute ledger (:class:`~ceal_pipeline.core.ledger.ComputeLedger` as a dict):
    ``shards`` are ``(frames, forward passes, scoring seconds)`` per scored shard;
    ``selection_s`` counts the pool's draw and the selection; ``estimated_label_cost`` is the
    batch's price at the round's price list."""
    shards = list(shards)
    return ComputeLedger(
        round_index=round_index,
        pool_frames=int(unlabeled_frames),
        frames_scored=sum(int(s[0]) for s in shards),
        forward_passes=sum(int(s[1]) for s in shards),
        training_s=float(training_s),
        scoring_s=float(sum(s[2] for s in shards)),
        selection_s=float(selection_s),
        estimated_label_cost=float(estimated_label_cost),
    ).to_dict()


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


_ROUND_KEY = re.compile(r"r(\d{4,})")
_SHARD_KEY = re.compile(r"r(\d{4,})-s(\d{3,})")


def round_partition_key(round_index: int) -> str:
    """``r0003``: the acquisition_rounds partition key of a round."""
    if round_index < 0:
        raise ValueError(f"rounds start at 0, got {round_index}")
    return f"r{round_index:04d}"


def parse_round_partition_key(key: str) -> int:
    """``"r0003"`` -> ``3``; a clear error for anything else."""
    match = _ROUND_KEY.fullmatch(key)
    if not match:
        raise ValueError(f"partition key {key!r} is not an acquisition round key like 'r0003'")
    return int(match.group(1))


def shard_partition_key(round_index: int, shard_index: int) -> str:
    """``r0003-s007``: the candidate_scores partition key of a shard."""
    return f"{round_partition_key(round_index)}-s{shard_index:03d}"


def parse_shard_partition_key(key: str) -> tuple[int, int]:
    """``"r0003-s007"`` -> ``(3, 7)``; a clear error for anything else."""
    match = _SHARD_KEY.fullmatch(key)
    if not match:
        raise ValueError(f"partition key {key!r} is not a candidate shard key like 'r0003-s007'")
    return int(match.group(1)), int(match.group(2))
