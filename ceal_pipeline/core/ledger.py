"""The compute ledger: what one CEAL round cost, so the saving is a number.

CEAL's point is to spend a few percent of a full-pool rescoring per round. Each
round records how many frames it rescored (the candidate pool) out of how many it
could have (the unlabeled pool), the MC forward passes, and wall-clock seconds of
training, scoring and selection; the Dagster layer shows them as metadata.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from types import TracebackType


@dataclass
class ComputeLedger:
    """One acquisition round's compute, in frames, forward passes and seconds.

    ``pool_frames`` is the size of the unlabeled pool the round chose from and
    ``frames_scored`` how many frames were actually rescored (the candidate
    pool, or the whole pool for a full rescoring round). ``forward_passes``
    counts stochastic head passes (``frames_scored * T`` for head-only MC).
    """

    round_index: int
    pool_frames: int = 0
    frames_scored: int = 0
    forward_passes: int = 0
    training_s: float = 0.0
    scoring_s: float = 0.0
    selection_s: float = 0.0
    #: The batch's labeling price estimated at selection (vendor price list x frames and
    #: estimated cuboids; core.selection.LabelingBudget), in the price list's currency.
    estimated_label_cost: float = 0.0

    def __post_init__(self) -> None:
        for name in ("round_index", "pool_frames", "frames_scored", "forward_passes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ComputeLedger.{name} must be an int >= 0, got {value!r}")
        for name in ("training_s", "scoring_s", "selection_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"ComputeLedger.{name} must be seconds >= 0, got {value!r}")
        cost = self.estimated_label_cost
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not cost >= 0:
            raise ValueError(f"ComputeLedger.estimated_label_cost must be money >= 0, got {cost!r}")

    @property
    def scored_fraction(self) -> float:
        """Share of the pool rescored this round (CEAL's alpha; 1.0 for full-pool acquisition)."""
        return self.frames_scored / self.pool_frames if self.pool_frames else 0.0

    @property
    def total_s(self) -> float:
        """Training + scoring + selection wall time, seconds."""
        return self.training_s + self.scoring_s + self.selection_s

    def to_dict(self) -> dict[str, int | float]:
        """The recorded fields as plain ints and floats (JSON, DuckDB, Dagster metadata)."""
        return asdict(self)


def ledger_totals(entries: list[dict]) -> dict[str, int | float]:
    """Totals over rounds of :meth:`ComputeLedger.to_dict` records: ``forward_passes``,
    ``frames_scored``, ``acquisition_s`` (scoring + selection) and ``training_s`` (seconds)."""
    return {
        "forward_passes": sum(int(e["forward_passes"]) for e in entries),
        "frames_scored": sum(int(e["frames_scored"]) for e in entries),
        "acquisition_s": sum(e["scoring_s"] + e["selection_s"] for e in entries),
        "training_s": sum(e["training_s"] for e in entries),
    }


class Stopwatch:
    """Wall-clock seconds of a ``with`` block (``time.perf_counter``, monotonic).

    ``seconds`` is the running time inside the block and the final time after it::

        with Stopwatch() as watch:
            scores = score(pool)
        ledger.scoring_s += watch.seconds
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._stop: float | None = None

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self._stop = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start


def stopwatch() -> Stopwatch:
    """A new :class:`Stopwatch`, for ``with stopwatch() as watch:``."""
    return Stopwatch()
