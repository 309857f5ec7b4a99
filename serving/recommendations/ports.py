"""Ports of the recommendations service: what it reads and writes, not how.

Adapters (``adapters.py``) implement them over PostgreSQL, Redis, the lake and the outbox;
unit tests use in-memory fakes behind the same protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from serving.recommendations.model import (
    ClickThrough,
    ProductInfo,
    Recommendations,
    Scored,
    Signal,
)


class Catalog(Protocol):
    """Products' status, category, title and SKUs."""

    def describe(self, product_ids: Sequence[str]) -> dict[str, ProductInfo]:
        """The known products among ``product_ids`` (unknown ones are absent)."""
        ...


class Stock(Protocol):
    """Which SKUs have units available to sell."""

    def in_stock(self, skus: Sequence[str]) -> set[str]:
        """The SKUs among ``skus`` with at least one available unit in any warehouse."""
        ...


class Purchases(Protocol):
    """What a customer already bought."""

    def bought(self, customer_id: str) -> set[str]:
        """Product ids of the customer's orders that were not cancelled."""
        ...


class Trending(Protocol):
    """The streaming trending read model."""

    def top(self, scope: str, n: int) -> tuple[list[Scored], str | None]:
        """The newest window's top ``n`` of ``scope`` and that window's version (None: none)."""
        ...


class TrendingBaseline(Protocol):
    """The batch daily-trending table: the fallback when the stream has nothing."""

    def top(self, region: str | None, n: int) -> tuple[list[Scored], str | None]:
        """The newest day's top ``n`` in ``region`` (all regions: None) and that day."""
        ...


class Activity(Protocol):
    """Each customer's recent signals, kept fresh from the stream."""

    def recent(self, customer_id: str, n: int) -> list[Signal]:
        """The customer's last ``n`` signals, newest first."""
        ...


class ServedLog(Protocol):
    """Where served lists go: the outbox (recommendation.served) and click attribution."""

    def served(
        self,
        recommendations: Recommendations,
        *,
        session_id: str,
        customer_id: str | None,
        region: str,
    ) -> None:
        """Record one served list (one event, in one transaction)."""
        ...


class ListCache(Protocol):
    """Raw candidate lists of a model version, shared by the serving processes."""

    def get(self, key: str) -> list[Scored] | None:
        """The cached list, None on a miss."""
        ...

    def put(self, key: str, candidates: Sequence[Scored]) -> None:
        """Cache a list (with the cache's TTL)."""
        ...


class ClickStats(Protocol):
    """Served and clicked counts per model version (kept by the activity consumer)."""

    def click_through(self) -> list[ClickThrough]:
        """Every model version seen, with its counts."""
        ...
