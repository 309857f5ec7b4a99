"""The ports of search: the index (tantivy or Elasticsearch) and the personalization re-ranker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from serving.search.model import IndexQuery, IndexResult, ProductDoc


@dataclass(frozen=True)
class IndexVersion:
    """One built version of a region's index."""

    name: str  # "v3"
    documents: int
    current: bool


class SearchIndex(Protocol):
    """One index per region, versioned; reads follow the current version without a restart."""

    def search(self, region: str, query: IndexQuery) -> IndexResult:
        """Run ``query`` on the region's current version."""
        ...

    def doc_freq(self, region: str, word: str) -> int:
        """How many documents have ``word`` in their title or brand (live)."""
        ...

    def vocabulary(self, region: str) -> Mapping[str, int]:
        """Every title and brand word with its document frequency (the speller's source)."""
        ...

    def get(self, region: str, product_ids: Sequence[str]) -> dict[str, ProductDoc]:
        """The stored documents of these products (those present)."""
        ...

    def find_by_sku(self, skus: Sequence[str]) -> dict[str, ProductDoc]:
        """SKU → the document holding it, in any region."""
        ...

    def upsert(self, docs: Sequence[ProductDoc]) -> None:
        """Write documents into their region's current version (visible after ``commit``)."""
        ...

    def commit(self) -> None:
        """Make the writes so far visible to searches."""
        ...

    def current_version(self, region: str) -> str | None:
        """The version queries of the region read (None before the first build)."""
        ...

    def versions(self, region: str) -> list[IndexVersion]:
        """Every kept version of the region, oldest first."""
        ...

    def build_version(self, region: str, docs: Iterable[ProductDoc]) -> str:
        """Write ``docs`` into a new version (not yet current); return its name."""
        ...

    def activate(self, region: str, version: str) -> None:
        """Make ``version`` current atomically; queries in flight finish on the old one."""
        ...

    def close(self) -> None:
        """Release writers and clients."""
        ...


class Reranker(Protocol):
    def rerank(
        self, customer_id: str, product_ids: Sequence[str], scores: Sequence[float]
    ) -> list[float]: ...
