"""Releasing load-generating threads together, with the round's deadline already set.

A deadline set by the coordinating thread after the barrier leaves a window where a fast
client sees it unset (0) and stops at once: rounds then ran with fewer clients than asked,
and a one-client round ran none. The barrier's action runs before any thread is released.
"""

from __future__ import annotations

import threading
import time


class StartLine:
    """A barrier for ``parties`` threads whose release starts a round of ``seconds``."""

    def __init__(self, parties: int, seconds: float) -> None:
        self._seconds = seconds
        self.deadline = 0.0  # perf_counter() time at which the round ends; 0 before the start
        self.started = 0.0
        self._barrier = threading.Barrier(parties, action=self._start)

    def _start(self) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + self._seconds

    def wait(self) -> None:
        """Block until every party arrived; the deadline is set when this returns."""
        self._barrier.wait()

    def running(self) -> bool:
        """Whether the round's time is not over yet."""
        return time.perf_counter() < self.deadline
