"""Which of a round's recorded parameters differ from the deployment's configuration.

A round's parameters are recorded when it opens, from the run's config. The
Dagster Launchpad keeps what was typed into it for the next launch, so a value
edited for one round silently opens the next one too unless someone sees it:
the opening step reports every recorded parameter that differs from
``ceal.yaml``'s value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or (math.isnan(float(a)) and math.isnan(float(b)))
    return a == b or str(a) == str(b)


def differing_parameters(recorded: Mapping[str, Any], configured: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {"recorded": value, "ceal.yaml": value}}`` for each parameter of ``configured``
    whose recorded value differs (a name the round did not record is left out: an older round)."""
    return {name: {"recorded": recorded[name], "ceal.yaml": value} for name, value in configured.items()
            if name in recorded and not _same(recorded[name], value)}
