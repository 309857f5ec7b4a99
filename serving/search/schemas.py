"""Response bodies of the search API (msgspec structs at the edge)."""

from __future__ import annotations

import msgspec

from serving.search.service import SearchOutcome


class HitOut(msgspec.Struct, kw_only=True):
    """One product found; ``price_minor`` is in the response's ``currency``."""

    product_id: str
    title: str
    brand: str | None
    category_id: str
    region: str
    price_minor: int
    currency: str
    availability: str  # in_stock | out_of_stock
    available: int
    prime: bool
    image_url: str | None
    highlight: str | None  # the title with matched words in <b>…</b> (HTML-escaped)
    score: float


class FacetCount(msgspec.Struct, kw_only=True):
    """A facet value and how many matches have it."""

    value: str
    count: int


class PriceRangeOut(msgspec.Struct, kw_only=True):
    """A price range (minor units of ``currency``, min inclusive, max exclusive)."""

    min_minor: int | None
    max_minor: int | None
    count: int


class FacetsOut(msgspec.Struct, kw_only=True):
    """Counts over every match (not just the page)."""

    category: list[FacetCount]
    brand: list[FacetCount]
    price: list[PriceRangeOut]


class SearchOut(msgspec.Struct, kw_only=True):
    """GET /v1/search."""

    search_id: str  # send it back in search.performed / product.viewed (POST /v1/events)
    query: str
    understood: str  # the query as run: spelling corrected
    corrected: bool
    total: int
    page: int
    page_size: int
    currency: str
    regions: list[str]
    hits: list[HitOut]
    facets: FacetsOut
    index_versions: dict[str, str | None]
    personalized: bool
    took_ms: float

    @classmethod
    def of(cls, found: SearchOutcome) -> SearchOut:
        """The body of a search outcome."""
        return cls(
            search_id=found.search_id,
            query=found.query,
            understood=found.understood,
            corrected=found.corrected,
            total=found.total,
            page=found.page,
            page_size=found.page_size,
            currency=found.currency,
            regions=found.regions,
            hits=[
                HitOut(
                    product_id=h.product_id,
                    title=h.title,
                    brand=h.brand,
                    category_id=h.category_id,
                    region=h.region,
                    price_minor=h.price_minor,
                    currency=h.currency,
                    availability="in_stock" if h.in_stock else "out_of_stock",
                    available=h.available,
                    prime=h.prime,
                    image_url=h.image_url,
                    highlight=h.highlight,
                    score=h.score,
                )
                for h in found.hits
            ],
            facets=FacetsOut(
                category=[FacetCount(value=k, count=c) for k, c in found.categories],
                brand=[FacetCount(value=k, count=c) for k, c in found.brands],
                price=[
                    PriceRangeOut(min_minor=p.min_minor, max_minor=p.max_minor, count=p.count)
                    for p in found.prices
                ],
            ),
            index_versions=found.index_versions,
            personalized=found.personalized,
            took_ms=found.took_ms,
        )


EXAMPLE: dict[str, object] = {
    "search_id": "srch_0193b0a4c2e27c4e9d1f6a3b5c7d9e01",
    "query": "wireles hedphones",
    "understood": "wireless headphones",
    "corrected": True,
    "total": 42,
    "page": 1,
    "page_size": 20,
    "currency": "EUR",
    "regions": ["eu"],
    "hits": [
        {
            "product_id": "prd_07_0193b0a4c2e27c4e9d1f6a3b5c7d9e02",
            "title": "Sonyx Pro Wireless Headphones",
            "brand": "Sonyx",
            "category_id": "cat_electronics_audio",
            "region": "eu",
            "price_minor": 12999,
            "currency": "EUR",
            "availability": "in_stock",
            "available": 37,
            "prime": True,
            "image_url": None,
            "highlight": "Sonyx Pro <b>Wireless</b> <b>Headphones</b>",
            "score": 7.4121,
        }
    ],
    "facets": {
        "category": [{"value": "cat_electronics_audio", "count": 42}],
        "brand": [{"value": "Sonyx", "count": 20}, {"value": "Boze", "count": 22}],
        "price": [
            {"min_minor": None, "max_minor": 2500, "count": 0},
            {"min_minor": 2500, "max_minor": 5000, "count": 6},
            {"min_minor": 5000, "max_minor": None, "count": 36},
        ],
    },
    "index_versions": {"eu": "v3"},
    "personalized": False,
    "took_ms": 1.7,
}
