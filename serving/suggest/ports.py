"""Autosuggest's ports: where counts persist, and where product titles come from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class QuerySeen:
    """A search with results in a region: the normalized query and its decayed increment."""

    event_id: str
    region: str
    text: str
    increment: float


@dataclass(frozen=True, slots=True)
class ProductViewedOp:
    """A product page view: the product's decayed popularity increment."""

    event_id: str
    product_id: str
    increment: float


@dataclass(frozen=True, slots=True)
class TitleChanged:
    """A product snapshot: its title, status and version (older versions are ignored)."""

    event_id: str
    product_id: str
    version: int
    title: str
    active: bool


Op = QuerySeen | ProductViewedOp | TitleChanged


@dataclass(frozen=True, slots=True)
class Title:
    """A listed product's current title (``None`` title: no longer listed)."""

    product_id: str
    title: str | None


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed after a sequence number: queries per region and product ids."""

    seq: int
    queries: dict[str, dict[str, float]]
    products: dict[str, Title]
    views: dict[str, float]
    complete: bool  # False: the change log no longer reaches back that far; reload all
    more: bool = False  # the limit was reached: ask again from ``seq``


class CountStore(Protocol):
    """Persistent query counts, product popularity, titles and a change log."""

    def apply(self, ops: Sequence[Op]) -> int:
        """Apply each op once per event id (atomically per batch); return how many applied."""
        ...

    def seq(self) -> int:
        """The newest change's sequence number."""
        ...

    def queries(self, region: str, limit: int) -> dict[str, float]:
        """The ``limit`` most searched queries of a region with their decayed counts."""
        ...

    def views(self) -> dict[str, float]:
        """Product id → decayed views."""
        ...

    def titles(self) -> dict[str, Title]:
        """Titles recorded from catalog events (newer than the catalog's may be here)."""
        ...

    def changes_since(self, seq: int, limit: int) -> Changes:
        """What changed after ``seq``, with current values."""
        ...


class CatalogTitles(Protocol):
    """The catalog's listed products (the truth at start-up)."""

    def active_titles(self) -> Iterable[tuple[str, str]]:
        """(product id, title) of every active product."""
        ...
