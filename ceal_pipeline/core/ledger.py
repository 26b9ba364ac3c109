"""The compute ledger: what one CEAL round cost, so the saving is a number.

CEAL's point is to spend a few percent of a full-pool rescoring per round. Each
round records how many frames it rescored (the candidate pool) out of how many it
could have (the unlabeled pool), the MC forward passes, and wall-clock seconds of
training, scoring and selection; the Dagster layer shows them as metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
