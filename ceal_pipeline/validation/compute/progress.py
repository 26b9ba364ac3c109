"""The benchmarks' progress bar: one line on stderr, silent under ``--json``."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on stderr; silent when ``quiet`` (``--json``)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.quiet, self.started = total, 0, quiet, time.perf_counter()

    def step(self, label: str, amount: int = 1) -> None:
        self.done += amount
        if self.quiet:
            return
        width = 30
        filled = int(width * min(self.done, self.total) / max(self.total, 1))
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {elapsed:6.1f}s {label:<40}")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")
