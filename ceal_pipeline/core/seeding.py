"""Reproducible seeds for every random draw of a CEAL round.

A round's candidate pool must be re-drawable from what was recorded: re-running
an asset for the same round has to give the same pool (DESIGN.md, reliability
rules). So seeds are not taken from the clock or a global RNG but derived from
``(run seed, round, purpose)`` by hashing, and the derived value is stored next
to the draw it produced.
"""

from __future__ import annotations

import hashlib

#: Derived seeds are non-negative and fit in a signed 64-bit integer, so they
#: survive a round trip through DuckDB ``BIGINT``, JSON and Dagster metadata.
SEED_BITS = 63


def derive_seed(run_seed: int, round_index: int, purpose: str = "candidate_pool") -> int:
    """Return a stable, non-negative 63-bit seed for one random draw.

    The seed is the first 8 bytes of ``sha256("ceal|<run_seed>|<round_index>|<purpose>")``
    with the top bit cleared. Hashing (rather than ``run_seed + round_index``)
    keeps seeds of neighbouring rounds and of different purposes (e.g.
    ``"candidate_pool"`` and ``"mc_dropout"``) statistically unrelated, and the
    result does not depend on the Python version or platform.

    Args:
        run_seed: the experiment's base seed (any integer, may be negative).
        round_index: the acquisition round, ``>= 0``.
        purpose: what the draw is for; different purposes give different seeds.

    Returns:
        An ``int`` in ``[0, 2**63)`` usable with ``numpy.random.default_rng``.
    """
    if isinstance(run_seed, bool) or not isinstance(run_seed, int):
        raise TypeError(f"run_seed must be an int, got {run_seed!r} ({type(run_seed).__name__})")
    if isinstance(round_index, bool) or not isinstance(round_index, int):
        raise TypeError(f"round_index must be an int, got {round_index!r} ({type(round_index).__name__})")
    if round_index < 0:
        raise ValueError(f"round_index must be >= 0, got {round_index}")
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string naming the draw, got {purpose!r}")
    digest = hashlib.sha256(f"ceal|{run_seed}|{round_index}|{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
