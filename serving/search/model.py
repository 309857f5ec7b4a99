"""Search's pure domain: the product document, the query, currencies, ranking signals.

No engine here: the adapters (tantivy, Elasticsearch) turn an ``IndexQuery`` into their own
query language and give back ``IndexResult``; everything both must agree on lives in this
module so the two backends keep the same semantics.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import msgspec

from transactional.shared.errors import InvalidRequest

Sort = Literal["relevance", "price_asc", "price_desc", "newest", "popularity"]
SORTS: tuple[str, ...] = get_args(Sort)
ALL_REGIONS = "all"
MAX_QUERY_LENGTH = 200
MAX_QUERY_TOKENS = 12
MAX_PAGE = 500  # deep paging is for crawlers: the window stays bounded
FACET_SIZE = 20
# Boosts of the BM25 fields (title counts most, then the brand, then the description).
FIELD_BOOSTS: Mapping[str, float] = {"title": 3.0, "brand": 2.0, "description": 1.0}
# A typo-tolerant match ranks below an exact one of the same word.
FUZZY_BOOST = 0.5
# Availability and popularity multiply the text score (see ``rank_weight``).
OUT_OF_STOCK_FACTOR = 0.5
POPULARITY_FACTOR = 0.25
# Price ranges of the facet, in EUR before conversion to the requested currency.
PRICE_EDGES_EUR: tuple[float, ...] = (25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
# Query words that carry no meaning on their own: never required, never corrected.
STOPWORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is"),
        *("it", "of", "on", "or", "the", "to", "with", "without"),
    }
)
_WORD = re.compile(r"[0-9a-z]+")


class ProductDoc(msgspec.Struct, kw_only=True):
    """One product as search holds it: its latest snapshot plus stock and popularity."""

    product_id: str
    region: str  # the index it lives in: the seller's region
    seller_id: str
    version: int  # product_version of the snapshot: older snapshots are dropped
    title: str
    description: str = ""
    brand: str | None = None
    category_id: str
    category_path: list[str] = []
    status: str = "active"
    currency: str
    price_minor: int  # list price of the default variant, in ``currency``
    skus: list[str] = []
    prime: bool = False
    image_url: str | None = None
    created_us: int = 0  # first seen (epoch microseconds): the "newest" sort
    popularity: float = 0.0  # weighted views, carts and purchases
    # sku -> warehouse -> [available units, stamp (epoch us) of the movement that set it]
    stock: dict[str, dict[str, list[int]]] = {}

    @property
    def available(self) -> int:
        """Units available over every SKU and warehouse."""
        return sum(entry[0] for per_wh in self.stock.values() for entry in per_wh.values())

    @property
    def in_stock(self) -> bool:
        """Whether any unit can be bought."""
        return self.available > 0

    @property
    def listed(self) -> bool:
        """Whether shoppers may find it."""
        return self.status == "active"

    @property
    def category_ids(self) -> list[str]:
        """The leaf category and its ancestors (ids extend their parent's: ``cat_a_b``)."""
        parts = self.category_id.split("_")
        return ["_".join(parts[:n]) for n in range(2, len(parts) + 1)]


def set_stock(doc: ProductDoc, sku: str, warehouse: str, available: int, stamp_us: int) -> bool:
    """Record a SKU's availability in a warehouse unless a later movement already did."""
    per_wh = doc.stock.setdefault(sku, {})
    current = per_wh.get(warehouse)
    if current is not None and current[1] > stamp_us:
        return False
    per_wh[warehouse] = [max(0, available), stamp_us]
    return True


def apply_snapshot(current: ProductDoc | None, snapshot: ProductDoc) -> ProductDoc | None:
    """The document after a catalog snapshot; None when ``current`` is already newer."""
    if current is None:
        return snapshot
    if snapshot.version <= current.version:
        return None
    # Stock and popularity come from other streams: carry them over, drop SKUs that left.
    snapshot.stock = {sku: wh for sku, wh in current.stock.items() if sku in snapshot.skus}
    snapshot.popularity = current.popularity
    snapshot.created_us = current.created_us or snapshot.created_us
    return snapshot


# -- currencies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FxTable:
    """Conversion rates to one base currency (EUR per unit); never used to sum money."""

    rates: Mapping[str, float]
    base: str = "EUR"

    def supports(self, currency: str) -> bool:
        """Whether prices can be shown in ``currency``."""
        return currency in self.rates

    def to_base(self, amount_minor: int, currency: str) -> float:
        """Minor units of ``currency`` as base major units (for filters, sorting, ranges)."""
        return amount_minor / 100 * self.rates[currency]

    def from_base(self, amount_base: float, currency: str) -> int:
        """Base major units as minor units of ``currency`` (rounded half up)."""
        return math.floor(amount_base / self.rates[currency] * 100 + 0.5)

    def convert(self, amount_minor: int, source: str, target: str) -> int:
        """A price in another currency; exact when the currency is the same."""
        if source == target:
            return amount_minor
        return self.from_base(self.to_base(amount_minor, source), target)

    def price_edges(self, currency: str) -> tuple[int, ...]:
        """The facet's range edges in ``currency``, major units rounded to a readable number."""
        return tuple(_readable(edge / self.rates[currency]) for edge in PRICE_EDGES_EUR)


def _readable(value: float) -> int:
    """``value`` rounded to 1, 2, 2.5 or 5 times a power of ten (1234 -> 1000, 2222 -> 2000)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    best = min((1, 2, 2.5, 5, 10), key=lambda step: abs(value - step * power))
    return max(1, int(best * power))


# -- the query ------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """Lower-case ASCII words, as the engines' default tokenizer splits them."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _WORD.findall(folded)


@dataclass(frozen=True)
class TermGroup:
    """One query word: exact alternatives (the word, its correction, synonyms) or a near one."""

    terms: tuple[str, ...]
    fuzzy: str | None = None  # matched within an edit distance (typos the speller missed)
    prefix: bool = False  # the last word: also complete it ("sunglas" -> "sunglasses")
    required: bool = True  # unknown words do not empty the result


@dataclass(frozen=True)
class Filters:
    """Restrictions every hit satisfies; prices in base units (``FxTable.base``)."""

    category: str | None = None
    brand: str | None = None
    seller: str | None = None
    price_min_base: float | None = None
    price_max_base: float | None = None
    in_stock: bool | None = None
    prime: bool | None = None


@dataclass(frozen=True)
class IndexQuery:
    """What an adapter runs on one region's index."""

    groups: tuple[TermGroup, ...]
    filters: Filters
    sort: str
    offset: int
    limit: int
    price_edges_base: tuple[float, ...]  # facet ranges (base units)
    facet_size: int = FACET_SIZE


@dataclass(frozen=True)
class IndexHit:
    """A matching document, its score (relevance sort) and a highlighted title."""

    doc: ProductDoc
    score: float
    highlight: str | None = None


@dataclass
class IndexFacets:
    """Counts per category (leaf id), brand and price range over every match."""

    category: dict[str, int] = field(default_factory=dict)
    brand: dict[str, int] = field(default_factory=dict)
    price: list[int] = field(default_factory=list)  # one count per range of the edges

    def add(self, other: IndexFacets) -> None:
        """Merge another region's counts (the regions hold disjoint products)."""
        for mine, theirs in ((self.category, other.category), (self.brand, other.brand)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        if not self.price:
            self.price = list(other.price)
        else:
            self.price = [a + b for a, b in zip(self.price, other.price, strict=True)]


@dataclass
class IndexResult:
    """One region's answer."""

    total: int
    hits: list[IndexHit]
    facets: IndexFacets
    version: str | None


def rank_weight(doc: ProductDoc) -> float:
    """The factor popularity and availability put on a document's text score (> 0)."""
    popularity = 1 + POPULARITY_FACTOR * math.log10(1 + max(0.0, doc.popularity))
    return popularity * (1.0 if doc.in_stock else OUT_OF_STOCK_FACTOR)


def highlight_title(title: str, words: Sequence[str]) -> str | None:
    """``title`` HTML-escaped with the words a query matched in ``<b>``; None if none did.

    A title word matches a query word it equals, extends (plurals, the unfinished last word)
    or is one edit away from (typos); the engines' own highlighters do the same job.
    """
    wanted = [w for w in words if len(w) >= 2]
    out: list[str] = []
    marked = False
    position = 0
    for match in re.finditer(r"[0-9A-Za-z]+", title):
        out.append(html.escape(title[position : match.start()]))
        word = match.group(0)
        lowered = word.lower()
        if any(_near(lowered, w) for w in wanted):
            out.append(f"<b>{html.escape(word)}</b>")
            marked = True
        else:
            out.append(html.escape(word))
        position = match.end()
    out.append(html.escape(title[position:]))
    return "".join(out) if marked else None


def _near(word: str, query: str) -> bool:
    if word == query or (len(query) >= 3 and word.startswith(query)):
        return True
    if len(query) < 4 or abs(len(word) - len(query)) > 1:
        return False
    # one substitution, insertion or deletion
    i = 0
    while i < min(len(word), len(query)) and word[i] == query[i]:
        i += 1
    return (
        word[i + 1 :] == query[i + 1 :] or word[i:] == query[i + 1 :] or word[i + 1 :] == query[i:]
    )


def merge_key(sort: str, doc: ProductDoc, score: float, fx: FxTable) -> tuple[float, str]:
    """Order of hits across regions (ascending), the one the engines apply within a region."""
    if sort in ("price_asc", "price_desc"):
        price = fx.to_base(doc.price_minor, doc.currency)
        return (price if sort == "price_asc" else -price, doc.product_id)
    if sort == "newest":
        return (-float(doc.created_us), doc.product_id)
    if sort == "popularity":
        return (-doc.popularity, doc.product_id)
    return (-score, doc.product_id)


# -- request validation ---------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRequest:
    """A shopper's search as the endpoint received it (validated by ``validate``)."""

    q: str = ""
    category: str | None = None
    brand: str | None = None
    seller: str | None = None
    price_min: int | None = None  # minor units of ``currency``
    price_max: int | None = None
    currency: str = "EUR"
    in_stock: bool | None = None
    prime: bool | None = None
    sort: str = "relevance"
    page: int = 1
    page_size: int = 20
    region: str | None = None  # None: this process's region; "all": every region merged
    user: str | None = None  # customer id for personalization

    def validate(self, *, regions: Sequence[str], fx: FxTable, max_page_size: int) -> None:
        """Raise InvalidRequest (422) naming the bad parameter."""
        if len(self.q) > MAX_QUERY_LENGTH:
            raise InvalidRequest(
                f"q: at most {MAX_QUERY_LENGTH} characters", code="invalid_query", parameter="q"
            )
        if self.sort not in SORTS:
            raise InvalidRequest(
                f"sort must be one of {', '.join(SORTS)}", code="invalid_sort", parameter="sort"
            )
        if not 1 <= self.page_size <= max_page_size:
            raise InvalidRequest(
                f"page_size must be 1 to {max_page_size}",
                code="invalid_page_size",
                parameter="page_size",
            )
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidRequest(
                f"page must be 1 to {MAX_PAGE}", code="invalid_page", parameter="page"
            )
        if not fx.supports(self.currency):
            raise InvalidRequest(
                f"unsupported currency {self.currency!r}; use one of {', '.join(sorted(fx.rates))}",
                code="unsupported_currency",
                parameter="currency",
            )
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidRequest(
                    f"{name} must be >= 0 (minor units)", code="invalid_price", parameter=name
                )
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise InvalidRequest(
                "price_min is above price_max", code="invalid_price_range", parameter="price_min"
            )
        if self.region is not None and self.region != ALL_REGIONS and self.region not in regions:
            raise InvalidRequest(
                f"unknown region {self.region!r}; use one of {', '.join(regions)} or all",
                code="unknown_region",
                parameter="region",
            )
