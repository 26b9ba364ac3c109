"""Counts in messages read as English: ``1 sequence``, ``3 sequences``, ``0 frames``."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 sequence"`` / ``"2 sequences"``; ``plural`` for nouns that do not take an ``s``."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
