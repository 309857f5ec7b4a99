"""A result that arrives later: what a pipelined repository returns for a queued statement.

Pure (no driver): domain ports name it, adapters and fakes fill it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Deferred(Generic[T]):
    """A queued statement's result: readable once its unit of work has synced."""

    def __init__(self, source: Any, read: Callable[[Any], T]) -> None:
        self._source = source
        self._read = read
        self._value: T
        self._done = False

    @classmethod
    def of(cls, value: T) -> Deferred[T]:
        """A result known already (fakes, and statements that were not needed)."""
        deferred: Deferred[T] = cls(None, lambda _source: value)
        deferred._value, deferred._done = value, True
        return deferred

    def get(self) -> T:
        """The result (read from its source the first time)."""
        if not self._done:
            self._value = self._read(self._source)
            self._done = True
        return self._value
