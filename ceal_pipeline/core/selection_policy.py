"""The selection stage's vocabulary: policy, price list, candidates and the purchase.

These are the typed values that :func:`ceal_pipeline.core.selection.select_batch`
takes and returns (and that a round records when it opens); the decision itself
lives in :mod:`ceal_pipeline.core.selection`. No Dagster, no torch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

SelectionMethod = Literal["topk", "class_balance", "diversity", "class_balance_diversity"]
SELECTION_METHODS: tuple[str, ...] = ("topk", "class_balance", "diversity", "class_balance_diversity")
TieBreak = Literal["diversity", "frame_id"]

#: The signals that can decide a pick, in the order they are consulted.
DECISIVE_SIGNALS: tuple[str, ...] = (
    "acquisition_value", "class_balance", "diversity", "value_per_cost", "tie_break_frame_id",
)


@dataclass(frozen=True)
class LabelingBudget:
    """A vendor's price list and, optionally, the money a round may spend.

    ``amount``: the round's budget in the price list's currency; ``None`` means
    no money limit (``K`` limits the batch; the prices only estimate its cost).
    ``price_per_frame``: charged for every frame bought (> 0 when ``amount`` is
    set, so that value per cost is finite). ``price_per_cuboid``: charged per
    labeled 3D box; a frame's cuboids are estimated by the detector's box count.
    """

    amount: Optional[float] = None
    price_per_frame: float = 1.0
    price_per_cuboid: float = 0.0

    def __post_init__(self) -> None:
        for name in ("price_per_frame", "price_per_cuboid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"LabelingBudget.{name} must be a finite number >= 0, got {value!r}")
        if self.amount is not None:
            if isinstance(self.amount, bool) or not isinstance(self.amount, (int, float)) or not self.amount >= 0:
                raise ValueError(f"LabelingBudget.amount must be a number >= 0 or None, got {self.amount!r}")
            if not self.price_per_frame > 0:
                raise ValueError(
                    "LabelingBudget.price_per_frame must be > 0 when a budget amount is set (a frame that costs "
                    "nothing has infinite value per cost); set the vendor's price per frame"
                )

    def price(self, frames: int, cuboids: int) -> float:
        """What the vendor charges for ``frames`` frames holding ``cuboids`` boxes in all (e.g. a delivery)."""
        return float(self.price_per_frame * frames + self.price_per_cuboid * cuboids)

    def frame_costs(self, cuboids: np.ndarray | None, n: int) -> np.ndarray:
        """``(n,)`` estimated price of each frame: per frame + per cuboid x estimated cuboids."""
        if self.price_per_cuboid > 0 and cuboids is None:
            raise ValueError(
                "the price list charges per cuboid but the candidates carry no cuboid estimates; "
                "pass SelectionCandidates.cuboids (the detector's box count per frame) or set price_per_cuboid=0"
            )
        boxes = np.zeros(n) if cuboids is None else np.asarray(cuboids, dtype=np.float64)
        return self.price_per_frame + self.price_per_cuboid * boxes


@dataclass(frozen=True)
class SelectionPolicy:
    """How a round turns scored candidates into a purchase (recorded when the round opens).

    ``method``: see the module docstring. ``diversity_weight`` in [0, 1]: the
    share of the greedy objective given to the distance to the batch (0 equals
    ``topk``; 1 is k-center greedy); used by the diversity methods.
    ``class_balance_strength`` >= 0: exponent on each class's need (0 equals
    ``topk``); used by the class-balance methods. ``per_sequence_cap``: at most
    this many frames per sequence (``None``: no cap). ``budget``: a price list
    and an optional amount (see :class:`LabelingBudget`). ``tie_break``: frames
    whose objective ties are separated by their distance to the batch
    (``diversity``, when embeddings are given) before the frame id.
    """

    method: SelectionMethod = "topk"
    diversity_weight: float = 0.5
    class_balance_strength: float = 1.0
    per_sequence_cap: Optional[int] = None
    budget: Optional[LabelingBudget] = None
    tie_break: TieBreak = "diversity"

    def __post_init__(self) -> None:
        if self.method not in SELECTION_METHODS:
            raise ValueError(f"unknown selection method {self.method!r}; use one of {', '.join(SELECTION_METHODS)}")
        if not 0.0 <= float(self.diversity_weight) <= 1.0:
            raise ValueError(f"diversity_weight must be in [0, 1], got {self.diversity_weight!r}")
        if not float(self.class_balance_strength) >= 0.0 or not np.isfinite(self.class_balance_strength):
            raise ValueError(f"class_balance_strength must be a finite number >= 0, got {self.class_balance_strength!r}")
        cap = self.per_sequence_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise ValueError(f"per_sequence_cap must be an int >= 1 or None, got {cap!r}")
        if self.tie_break not in ("diversity", "frame_id"):
            raise ValueError(f"tie_break must be 'diversity' or 'frame_id', got {self.tie_break!r}")

    @property
    def uses_class_balance(self) -> bool:
        return self.method in ("class_balance", "class_balance_diversity")

    @property
    def uses_diversity(self) -> bool:
        return self.method in ("diversity", "class_balance_diversity")

    def to_dict(self) -> dict:
        """Plain JSON-able fields (recorded with the round)."""
        budget = self.budget
        return {
            "method": self.method, "diversity_weight": float(self.diversity_weight),
            "class_balance_strength": float(self.class_balance_strength),
            "per_sequence_cap": None if self.per_sequence_cap is None else int(self.per_sequence_cap),
            "budget": None if budget is None else {
                "amount": budget.amount, "price_per_frame": budget.price_per_frame,
                "price_per_cuboid": budget.price_per_cuboid,
            },
            "tie_break": self.tie_break,
        }


@dataclass(frozen=True)
class SelectionCandidates:
    """The scored candidates of a round, one row per frame (any order).

    ``frame_ids`` ``(n,)`` unique ids; ``acquisition_values`` ``(n,)`` finite,
    larger = more worth labeling (nats for entropies); ``sequence_ids`` ``(n,)``
    the drive of each frame (needed with a per-sequence cap); ``class_counts``
    ``(n, C)`` expected objects per class in each frame (the detector's class
    order; needed by class balance); ``embeddings`` ``(n, d)`` per-frame feature
    vectors (needed by diversity; any float dtype); ``cuboids`` ``(n,)``
    estimated boxes per frame (needed when the price list charges per cuboid).
    """

    frame_ids: np.ndarray
    acquisition_values: np.ndarray
    sequence_ids: Optional[np.ndarray] = None
    class_counts: Optional[np.ndarray] = None
    embeddings: Optional[np.ndarray] = None
    cuboids: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(np.asarray(self.frame_ids).shape[0])


@dataclass(frozen=True)
class Selection:
    """A round's purchase, best first (pick order).

    ``frame_ids`` ``(b,)`` the chosen ids in the order they were picked;
    ``values`` ``(b,)`` each one's objective when it was picked (unit-free: the
    rank-normalised value in (0, 1], class-weighted, mixed with the normalised
    batch distance, divided by the cost under a budget); ``acquisition_values``
    ``(b,)`` their raw acquisition values; ``class_weights`` ``(b,)`` the class
    balance factor (1 without class balance); ``decided_by`` ``(b,)`` the signal
    that decided each pick (:data:`DECISIVE_SIGNALS`); ``costs`` ``(b,)`` each
    frame's estimated price (``None`` without a price list);
    ``estimated_cost`` their sum in pick order (``None`` without a price list);
    ``stopped_by``: ``k``, ``budget`` or ``candidates`` (nothing eligible was left).
    """

    frame_ids: np.ndarray
    values: np.ndarray
    acquisition_values: np.ndarray
    class_weights: np.ndarray
    decided_by: tuple[str, ...]
    costs: Optional[np.ndarray]
    estimated_cost: Optional[float]
    stopped_by: str
    policy: SelectionPolicy = field(default_factory=SelectionPolicy)

    def __len__(self) -> int:
        return int(self.frame_ids.shape[0])

    def decided_by_counts(self) -> dict[str, int]:
        """Picks per deciding signal, every signal of :data:`DECISIVE_SIGNALS` listed."""
        counts = Counter(self.decided_by)
        return {signal: int(counts.get(signal, 0)) for signal in DECISIVE_SIGNALS}

    @property
    def decided_by_round(self) -> str:
        """The signal that decided most picks (ties: the earlier signal of the chain); the round's verdict."""
        counts = self.decided_by_counts()
        if not self.decided_by:
            return "none"
        return max(DECISIVE_SIGNALS, key=lambda s: (counts[s], -DECISIVE_SIGNALS.index(s)))

    def summary(self) -> dict:
        """JSON-able record of the round's selection (metadata, the round's facts)."""
        return {
            "policy": self.policy.to_dict(),
            "frames": len(self),
            "decided_by": self.decided_by_round,
            "decided_by_counts": self.decided_by_counts(),
            "estimated_cost": self.estimated_cost,
            "stopped_by": self.stopped_by,
        }
