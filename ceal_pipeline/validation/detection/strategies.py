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
- ``..._pruned``: the same CEAL strategy with the pipeline's pruning rule applied
  after every round's scoring.
"""

from __future__ import annotations

import re

from ceal_pipeline.core.detection_acquisition import DETECTION_ACQUISITION_FUNCTIONS
from ceal_pipeline.validation.strategies import Strategy

_CEAL = re.compile(r"^ceal_(?P<fn>[a-z_]+?)_(?P<percent>\d+(?:\.\d+)?)pct(?P<pruned>_pruned)?$")
#: The candidate pools the default strategies draw, as fractions of the unlabeled pool.
CANDIDATE_POOL_FRACTIONS: tuple[float, ...] = (0.025, 0.05, 0.1)


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
        "'ceal_<function>_<percent>pct[_pruned]' such as 'ceal_localization_entropy_2.5pct'"
    )


def ceal_strategy_name(acquisition_fn: str, fraction: float, pruning: bool = False) -> str:
    """``ceal_<fn>_<percent>pct[_pruned]`` for a candidate pool of ``fraction`` of the unlabeled pool."""
    name = f"ceal_{acquisition_fn}_{100 * fraction:g}pct" + ("_pruned" if pruning else "")
    parse_detection_strategy(name)
    return name


def default_detection_strategies(pruned_fraction: float = 0.1) -> list[str]:
    """Random; full-pool localization entropy, heatmap entropy and their combination;
    CEAL (localization entropy) at 2.5 %, 5 % and 10 %; CEAL at ``pruned_fraction`` with pruning."""
    return [
        "random",
        "localization_entropy",
        "heatmap_entropy",
        "localization_and_heatmap_entropy",
        *(ceal_strategy_name("localization_entropy", f) for f in CANDIDATE_POOL_FRACTIONS),
        ceal_strategy_name("localization_entropy", pruned_fraction, pruning=True),
    ]


def unpruned_twin(name: str) -> str | None:
    """The same CEAL strategy without pruning (``..._pruned`` -> ``...``), None for others."""
    return name[: -len("_pruned")] if parse_detection_strategy(name).pruning else None
