"""Search on a real tantivy index: relevance, typos, synonyms, facets, sorts, regions, swaps."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from serving.search.model import ProductDoc, SearchRequest
from serving.search.reindex import rollback
from serving.search.service import SearchService
from serving.search.tantivy_index import TantivySearchIndex
from serving.search.text import SYNONYMS_FILE, Synonyms
from tests.integration.search.catalog import FX, FX_RATES, REGIONS, catalog, product

DOCS = catalog()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivySearchIndex]:
    built = TantivySearchIndex(tmp_path_factory.mktemp("search"), REGIONS, FX_RATES)
    for region in REGIONS:
        built.activate(region, built.build_version(region, [d for d in DOCS if d.region == region]))
    yield built
    built.close()


@pytest.fixture(scope="module")
def search(index: TantivySearchIndex) -> SearchService:
    return SearchService(index, FX, Synonyms.from_file(SYNONYMS_FILE), REGIONS, "eu")


def ids(service: SearchService, **params: object) -> list[str]:
    return [h.product_id for h in service.search(SearchRequest(**params)).hits]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("q", "top", "understood"),
    [
        ("headphones", "p_headphones", "headphones"),
        ("wireless headphones", "p_headphones", "wireless headphones"),
        ("wireles hedphones", "p_headphones", "wireless headphones"),
        ("sunglas", "p_sunglasses", "sunglasses"),
        ("sunglases", "p_sunglasses", "sunglasses"),
        ("runing shoes", "p_shoes", "running shoes"),
        ("electric ketle", "p_kettle", "electric kettle"),
        ("rayban", "p_sunglasses", "rayban"),
        ("shades", "p_sunglasses", "shades"),  # a synonym only
        ("earphones", "p_headphones", "earphones"),  # a synonym only
    ],
)
def test_known_queries_find_their_product_first(
    search: SearchService, q: str, top: str, understood: str
) -> None:
    found = search.search(SearchRequest(q=q))
    assert found.hits and found.hits[0].product_id == top, [h.title for h in found.hits]
    assert found.understood == understood
    assert found.corrected == (q.split() != understood.split())


def test_title_outranks_description_and_matches_are_highlighted(search: SearchService) -> None:
    found = search.search(SearchRequest(q="wireless headphones"))
    ranked = [h.product_id for h in found.hits]
    assert ranked.index("p_headphones") < ranked.index("p_speaker")
    assert found.hits[0].highlight == "Sonyx <b>Wireless</b> <b>Headphones</b>"


def test_an_out_of_stock_twin_ranks_below_the_buyable_one(search: SearchService) -> None:
    found = ids(search, q="running shoes")
    assert found[:2] == ["p_shoes", "p_shoes_gone"]
    assert ids(search, q="running shoes", in_stock=True) == ["p_shoes"]


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"category": "cat_fashion"},
        {"category": "cat_books_fiction"},
        {"brand": "nikey"},
        {"in_stock": False},
        {"prime": True},
        {"price_min": 5000, "price_max": 10000},
    ],
)
def test_totals_and_facets_equal_the_catalog_counts(
    search: SearchService, filters: dict[str, object]
) -> None:
    def keep(d: ProductDoc) -> bool:
        if d.region != "eu":
            return False
        if "category" in filters and str(filters["category"]) not in d.category_ids:
            return False
        if "brand" in filters and (d.brand or "").lower() != filters["brand"]:
            return False
        if "in_stock" in filters and d.in_stock != filters["in_stock"]:
            return False
        if "prime" in filters and d.prime != filters["prime"]:
            return False
        if "price_min" in filters:
            return int(str(filters["price_min"])) <= d.price_minor <= int(str(filters["price_max"]))
        return True

    expected = [d for d in DOCS if keep(d)]
    found = search.search(SearchRequest(page_size=100, **filters))  # type: ignore[arg-type]
    assert found.total == len(expected)
    assert dict(found.categories) == dict(Counter(d.category_id for d in expected))
    brands = Counter(d.brand for d in expected if d.brand)
    assert dict(found.brands) == dict(sorted(brands.items(), key=lambda kv: (-kv[1], kv[0]))[:20])
    for bucket in found.prices:
        low = bucket.min_minor if bucket.min_minor is not None else -1
        high = bucket.max_minor if bucket.max_minor is not None else 10**12
        assert bucket.count == sum(1 for d in expected if low <= d.price_minor < high)


def test_prices_filter_sort_and_show_in_the_requested_currency(search: SearchService) -> None:
    found = search.search(
        SearchRequest(q="headphones", region="all", currency="USD", sort="price_asc")
    )
    prices = [h.price_minor for h in found.hits]
    assert prices == sorted(prices) and all(h.currency == "USD" for h in found.hits)
    studio = next(h for h in found.hits if h.product_id == "p_us_headphones")
    assert studio.price_minor == 19999  # its own currency: exact
    wireless = next(h for h in found.hits if h.product_id == "p_headphones")
    assert wireless.price_minor == FX.convert(12999, "EUR", "USD")
    cheap = ids(search, q="headphones", region="all", currency="USD", price_max=10000)
    assert set(cheap) == {"p_wired", "p_speaker"}  # the speaker names them in its text


def test_sorts_newest_and_popularity(search: SearchService) -> None:
    assert ids(search, q="headphones", sort="newest")[:2] == ["p_headphones", "p_wired"]
    assert ids(search, q="headphones", sort="popularity")[0] == "p_headphones"
    assert ids(search, q="headphones", sort="price_desc")[0] == "p_headphones"


def test_region_all_merges_the_regions(search: SearchService) -> None:
    per_region = [search.search(SearchRequest(q="headphones", region=r)).total for r in REGIONS]
    merged = search.search(SearchRequest(q="headphones", region="all"))
    assert merged.total == sum(per_region) and merged.regions == REGIONS
    assert {"p_headphones", "p_us_headphones"} <= {h.product_id for h in merged.hits}


def test_paging_walks_every_hit_once(search: SearchService) -> None:
    total = search.search(SearchRequest(category="cat_books_fiction", region="all")).total
    seen: list[str] = []
    for page in range(1, total // 7 + 2):
        seen += ids(search, category="cat_books_fiction", region="all", page=page, page_size=7)
    assert len(seen) == total == len(set(seen))


class _Reverse:
    def rerank(
        self, customer_id: str, product_ids: Sequence[str], scores: Sequence[float]
    ) -> list[float]:
        return [-s for s in scores]


def test_a_reranker_reorders_the_page_for_a_user(search: SearchService) -> None:
    plain = ids(search, q="headphones")
    personal = SearchService(
        search.index, FX, search.synonyms, REGIONS, "eu", reranker=_Reverse()
    ).search(SearchRequest(q="headphones", user="cus_1"))
    assert personal.personalized
    assert [h.product_id for h in personal.hits] == plain[::-1]


def test_swap_and_rollback_under_concurrent_queries(tmp_path: Path) -> None:
    index = TantivySearchIndex(tmp_path, ["eu"], FX_RATES)
    old = [product(f"old_{i}", f"Sonyx Headphones {i}") for i in range(5)]
    new = [product(f"new_{i}", f"Sonyx Headphones {i}") for i in range(7)]
    first = index.build_version("eu", old)
    index.activate("eu", first)
    service = SearchService(index, FX, Synonyms([]), ["eu"], "eu")
    old_ids = frozenset(d.product_id for d in old)
    new_ids = frozenset(d.product_id for d in new)
    seen: list[frozenset[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            try:
                found = service.search(SearchRequest(q="headphones", page_size=50))
                seen.append(frozenset(h.product_id for h in found.hits))
            except BaseException as exc:  # every error fails the test
                errors.append(exc)

    def readers_see(wanted: frozenset[str], since: int) -> bool:
        # The concurrent readers (not only this thread) pick the switched version up.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if wanted in seen[since:]:
                return True
            time.sleep(0.01)
        return False

    threads = [threading.Thread(target=query) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(3):
            version = index.build_version("eu", new)
            mark = len(seen)
            index.activate("eu", version)
            assert set(ids(service, q="headphones", page_size=50)) == new_ids
            assert readers_see(new_ids, mark)
            # The first time the default (the previous version), then by name.
            mark = len(seen)
            back, to = rollback(index, "eu", None if round_ == 0 else first)
            assert (back, to) == (version, first)
            assert set(ids(service, q="headphones", page_size=50)) == old_ids
            assert readers_see(old_ids, mark)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    assert seen and all(s in (old_ids, new_ids) for s in seen)
    assert {old_ids, new_ids} <= set(seen)
    assert [v.current for v in index.versions("eu")].count(True) == 1
    index.close()
