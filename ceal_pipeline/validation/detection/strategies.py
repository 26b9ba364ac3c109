"""Names of the detection benchmark's strategies, parsed into :class:`~ceal_pipeline.validation.strategies.Strategy`.

- ``random``: the budget drawn uniformly from the unlabeled pool.
- ``<function>`` (full pool): every unlabeled frame scored with a detection
  acquisition function (a key of
  :data:`~ceal_pipeline.core.detection_acquisition.DETECTION_ACQUISITION_FUNCTIONS`),
  top-k bought.
- ``ceal_<function>_<percent>pct``: CEAL with a candidate pool of ``percent`` % of
  the unlabeled pool (the pipeline's ``pool_fraction``), e.g.
  ``ceal_localization_entropy_2.5pct``; the first acquisition is the paper's
  full-pool backfill.
- suffixes of a CEAL name, in this order, each switching on one part of the
  selection stage (:mod:`ceal_pipeline.core.selection`, the pipeline's own):
  ``_balanced`` (class balance), ``_diverse`` (diversity over the candidates'
  embeddings), ``_pruned`` (the pipeline's pruning rule after every round's
  scoring), ``_budget`` (a money budget per round instead of ``K`` frames:
  value per estimated cost until the budget is spent).

The selection stage against random (:func:`selection_stage_strategies`): random; full-pool heatmap
entropy (the best score function measured so far); CEAL with it at 5 %; CEAL +
class balance; + diversity; + both; + both + pruning; + both under a money
budget. Every strategy's labeling cost is recorded, so all are also compared
against cost and at equal numbers of boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ceal_pipeline.core.detection_acquisition import DETECTION_ACQUISITION_FUNCTIONS
from ceal_pipeline.validation.strategies import Strategy

_CEAL = re.compile(r"^ceal_(?P<fn>[a-z_]+?)_(?P<percent>\d+(?:\.\d+)?)pct(?P<balanced>_balanced)?"
                   r"(?P<diverse>_diverse)?(?P<pruned>_pruned)?(?P<budget>_budget)?$")


@dataclass(frozen=True)
class SelectionChoice:
    """The selection-stage options a detection strategy name switches on (all off for
    random and full-pool strategies)."""

    class_balance: bool = False
    diversity: bool = False
    money_budget: bool = False


def selection_choice(name: str) -> SelectionChoice:
    """The :class:`SelectionChoice` of a detection strategy name."""
    parse_detection_strategy(name)
    match = _CEAL.match(name)
    if not match:
        return SelectionChoice()
    return SelectionChoice(bool(match["balanced"]), bool(match["diverse"]), bool(match["budget"]))


def parse_detection_strategy(name: str) -> Strategy:
    """The :class:`Strategy` a detection benchmark name stands for (see the module docstring)."""
    if name == "random":
        return Strategy(name, "random")
    if name in DETECTION_ACQUISITION_FUNCTIONS:
        return Strategy(name, "full_pool", name)
    match = _CEAL.match(name)
    if match and match["fn"] in DETECTION_ACQUISITION_FUNCTIONS and 0 < float(match["percent"]) <= 100:
        return Strategy(name, "ceal", match["fn"], candidate_pool_fraction=float(match["percent"]) / 100,
                        pruning=bool(match["pruned"]))
    raise ValueError(
        f"unknown detection strategy {name!r}: use 'random', a detection acquisition function for full-pool "
        f"acquisition ({', '.join(sorted(DETECTION_ACQUISITION_FUNCTIONS))}), or "
        "'ceal_<function>_<percent>pct[_balanced][_diverse][_pruned][_budget]' (suffixes in this order) such as "
        "'ceal_heatmap_entropy_5pct_balanced_diverse'"
    )


def ceal_strategy_name(acquisition_fn: str, fraction: float, pruning: bool = False, *, class_balance: bool = False,
                       diversity: bool = False, money_budget: bool = False) -> str:
    """``ceal_<fn>_<percent>pct[_balanced][_diverse][_pruned][_budget]`` for a candidate pool of
    ``fraction`` of the unlabeled pool."""
    name = (f"ceal_{acquisition_fn}_{100 * fraction:g}pct" + ("_balanced" if class_balance else "")
            + ("_diverse" if diversity else "") + ("_pruned" if pruning else "") + ("_budget" if money_budget else ""))
    parse_detection_strategy(name)
    return name


def selection_stage_strategies(acquisition_fn: str = "heatmap_entropy", fraction: float = 0.05) -> list[str]:
    """The selection stage against random: random; full-pool ``acquisition_fn``; CEAL with it at ``fraction``;
    + class balance; + diversity; + both; + both + pruning; + both under a money budget."""
    return [
        "random",
        acquisition_fn,
        ceal_strategy_name(acquisition_fn, fraction),
        ceal_strategy_name(acquisition_fn, fraction, class_balance=True),
        ceal_strategy_name(acquisition_fn, fraction, diversity=True),
        ceal_strategy_name(acquisition_fn, fraction, class_balance=True, diversity=True),
        ceal_strategy_name(acquisition_fn, fraction, True, class_balance=True, diversity=True),
        ceal_strategy_name(acquisition_fn, fraction, class_balance=True, diversity=True, money_budget=True),
    ]


def unpruned_twin(name: str) -> str | None:
    """The same CEAL strategy without pruning (``..._pruned...`` -> without it), None for others."""
    return name.replace("_pruned", "", 1) if parse_detection_strategy(name).pruning else None
