"""The search use case: understand the query, run it per region, merge, convert, re-rank."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from schemas.ids import uuid7
from serving.search.model import (
    ALL_REGIONS,
    FACET_SIZE,
    Filters,
    FxTable,
    IndexFacets,
    IndexHit,
    IndexQuery,
    IndexResult,
    SearchRequest,
    merge_key,
)
from serving.search.ports import Reranker, SearchIndex
from serving.search.text import Corrector, Speller, Synonyms, Understood, understand


@dataclass(frozen=True)
class FoundProduct:
    """One hit as the shopper sees it."""

    product_id: str
    title: str
    brand: str | None
    category_id: str
    region: str
    price_minor: int  # in the requested currency
    currency: str
    in_stock: bool
    available: int
    prime: bool
    image_url: str | None
    highlight: str | None
    score: float


@dataclass(frozen=True)
class PriceBucket:
    """One price range of the facet, in minor units of the requested currency."""

    min_minor: int | None
    max_minor: int | None
    count: int


@dataclass(frozen=True)
class SearchOutcome:
    """The answer to a search."""

    search_id: str
    query: str
    understood: str
    corrected: bool
    hits: list[FoundProduct]
    total: int
    page: int
    page_size: int
    currency: str
    regions: list[str]
    categories: list[tuple[str, int]]
    brands: list[tuple[str, int]]
    prices: list[PriceBucket]
    index_versions: dict[str, str | None]
    personalized: bool
    took_ms: float


@dataclass
class _Vocabulary:
    speller: Speller
    built: float


@dataclass
class SearchService:
    """Search over a SearchIndex; regions merged for ``region=all``."""

    index: SearchIndex
    fx: FxTable
    synonyms: Synonyms
    regions: Sequence[str]
    default_region: str
    max_page_size: int = 100
    vocabulary_ttl_s: float = 30.0
    reranker: Reranker | None = None
    # Looked up per search when ``reranker`` is unset: the personalization service may be
    # wired after search (``provided["search_reranker"]``).
    reranker_lookup: Callable[[], Reranker | None] | None = None
    clock: Callable[[], float] = time.perf_counter
    _vocab: dict[str, _Vocabulary] = field(default_factory=dict)
    _vocab_lock: threading.Lock = field(default_factory=threading.Lock)
    # Threads for ``region=all``: the regions are searched at once, not one after another.
    _region_pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)

    def speller(self, region: str) -> Speller:
        """The region's speller; a stale one (older than ``vocabulary_ttl_s``) is rebuilt in
        the background while it keeps answering, so no search waits for the rebuild."""
        now = time.monotonic()
        cached = self._vocab.get(region)
        if cached is None:
            with self._vocab_lock:
                cached = self._vocab.get(region)
                if cached is None:
                    cached = _Vocabulary(Speller(self.index.vocabulary(region)), now)
                    self._vocab[region] = cached
        elif now - cached.built >= self.vocabulary_ttl_s and self._vocab_lock.acquire(False):
            cached.built = now  # one rebuild at a time

            def rebuild() -> None:
                try:
                    speller = Speller(self.index.vocabulary(region))
                    self._vocab[region] = _Vocabulary(speller, time.monotonic())
                finally:
                    self._vocab_lock.release()

            threading.Thread(target=rebuild, name="souk-search-speller", daemon=True).start()
        return cached.speller

    def understand(self, q: str, regions: Sequence[str]) -> Understood:
        """The query's term groups (corrections from the first region that knows a word)."""
        spellers = [self.speller(r) for r in regions]
        merged: Corrector = spellers[0] if len(spellers) == 1 else _MergedSpeller(spellers)

        def known(word: str) -> bool:
            return any(self.index.doc_freq(r, word) > 0 for r in regions)

        return understand(q, merged, known, self.synonyms)

    def search(self, request: SearchRequest) -> SearchOutcome:
        """Validate, run on the region(s), merge, convert prices, personalize the page."""
        started = self.clock()
        request.validate(regions=self.regions, fx=self.fx, max_page_size=self.max_page_size)
        region = request.region or self.default_region
        regions = list(self.regions) if region == ALL_REGIONS else [region]
        understood = self.understand(request.q, regions)
        currency = request.currency
        edges = self.fx.price_edges(currency)
        edges_base = tuple(self.fx.to_base(edge * 100, currency) for edge in edges)
        filters = Filters(
            category=request.category,
            brand=request.brand,
            seller=request.seller,
            price_min_base=None
            if request.price_min is None
            else self.fx.to_base(request.price_min, currency),
            price_max_base=None
            if request.price_max is None
            else self.fx.to_base(request.price_max, currency),
            in_stock=request.in_stock,
            prime=request.prime,
        )
        offset = (request.page - 1) * request.page_size
        total = 0
        facets = IndexFacets(price=[0] * (len(edges) + 1))
        hits: list[IndexHit] = []
        versions: dict[str, str | None] = {}
        many = len(regions) > 1
        query = IndexQuery(
            groups=understood.groups,
            filters=filters,
            sort=request.sort,
            # Each region returns its best offset+size; the merged page is cut from those.
            offset=0 if many else offset,
            limit=offset + request.page_size if many else request.page_size,
            price_edges_base=edges_base,
            facet_size=FACET_SIZE,
        )
        for name, result in zip(regions, self._search_regions(regions, query), strict=True):
            total += result.total
            facets.add(result.facets)
            hits.extend(result.hits)
            versions[name] = result.version
        if len(regions) > 1:
            hits.sort(key=lambda h: merge_key(request.sort, h.doc, h.score, self.fx))
            hits = hits[offset : offset + request.page_size]
        personalized = False
        user = request.user
        reranker = self.reranker or (self.reranker_lookup() if self.reranker_lookup else None)
        if reranker is not None and user and request.sort == "relevance" and hits:
            scores = reranker.rerank(
                user, [h.doc.product_id for h in hits], [h.score for h in hits]
            )
            if len(scores) == len(hits):
                ranked = sorted(
                    zip(scores, range(len(hits)), hits, strict=True), key=lambda t: (-t[0], t[1])
                )
                hits = [IndexHit(h.doc, float(s), h.highlight) for s, _, h in ranked]
                personalized = True
        return SearchOutcome(
            search_id=f"srch_{uuid7().hex}",
            query=request.q,
            understood=understood.text,
            corrected=understood.corrected,
            hits=[self._found(h, currency) for h in hits],
            total=total,
            page=request.page,
            page_size=request.page_size,
            currency=currency,
            regions=regions,
            categories=_top(facets.category),
            brands=_top(facets.brand),
            prices=[
                PriceBucket(
                    min_minor=None if i == 0 else edges[i - 1] * 100,
                    max_minor=None if i == len(edges) else edges[i] * 100,
                    count=count,
                )
                for i, count in enumerate(facets.price)
            ],
            index_versions=versions,
            personalized=personalized,
            took_ms=round((self.clock() - started) * 1000, 3),
        )

    def _search_regions(self, regions: Sequence[str], query: IndexQuery) -> list[IndexResult]:
        """Each region's result, in ``regions`` order; several regions are queried at once
        (the engine releases the GIL while it searches), the first one on this thread."""
        if len(regions) == 1:
            return [self.index.search(regions[0], query)]
        pool = self._region_pool
        if pool is None:
            with self._pool_lock:
                pool = self._region_pool
                if pool is None:
                    pool = self._region_pool = ThreadPoolExecutor(
                        max_workers=max(1, len(self.regions) - 1),
                        thread_name_prefix="souk-search-region",
                    )
        others = [pool.submit(self.index.search, name, query) for name in regions[1:]]
        first = self.index.search(regions[0], query)
        return [first, *(future.result() for future in others)]

    def _found(self, hit: IndexHit, currency: str) -> FoundProduct:
        doc = hit.doc
        return FoundProduct(
            product_id=doc.product_id,
            title=doc.title,
            brand=doc.brand,
            category_id=doc.category_id,
            region=doc.region,
            price_minor=self.fx.convert(doc.price_minor, doc.currency, currency),
            currency=currency,
            in_stock=doc.in_stock,
            available=doc.available,
            prime=doc.prime,
            image_url=doc.image_url,
            highlight=hit.highlight,
            score=round(hit.score, 6),
        )


def _top(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SIZE]


class _MergedSpeller:
    """Several regions' spellers: the best correction any of them offers."""

    def __init__(self, spellers: Sequence[Speller]) -> None:
        self._spellers = spellers

    def correct(self, word: str) -> str | None:
        for speller in self._spellers:
            found = speller.correct(word)
            if found is not None:
                return found
        return None
