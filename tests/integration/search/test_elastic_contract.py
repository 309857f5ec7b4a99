"""The Elasticsearch adapter against an ES-compatible server (noida-db): same semantics as
tantivy on the same small catalog — top hits, typos, filters, facet counts, alias swaps."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.search.elastic_index import ElasticSearchIndex
from serving.search.model import SearchRequest
from serving.search.reindex import rollback
from serving.search.service import SearchService
from serving.search.text import SYNONYMS_FILE, Synonyms
from tests.integration.search.catalog import FX, FX_RATES, KNOWN, REGIONS, catalog, product

DOCS = catalog(filler=20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def elastic_url() -> Iterator[str]:
    """A noida-db server speaking the Elasticsearch API, started for the session."""
    binary = Path(sys.executable).with_name("noida-db")
    data = Path(tempfile.mkdtemp(prefix="souk-noida-"))
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "start",
            "--data-dir",
            str(data),
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "noida-db exited"
        assert time.monotonic() < deadline, "noida-db did not answer in 30 s"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def index(elastic_url: str) -> Iterator[ElasticSearchIndex]:
    built = ElasticSearchIndex(elastic_url, REGIONS, FX_RATES, prefix="contract")
    for region in REGIONS:
        built.activate(region, built.build_version(region, [d for d in DOCS if d.region == region]))
    yield built
    built.close()


@pytest.fixture(scope="module")
def search(index: ElasticSearchIndex) -> SearchService:
    return SearchService(index, FX, Synonyms.from_file(SYNONYMS_FILE), REGIONS, "eu")


@pytest.mark.parametrize(
    ("q", "top", "understood"),
    [
        ("headphones", "p_headphones", "headphones"),
        ("wireles hedphones", "p_headphones", "wireless headphones"),
        ("sunglas", "p_sunglasses", "sunglasses"),
        ("runing shoes", "p_shoes", "running shoes"),
        ("shades", "p_sunglasses", "shades"),
    ],
)
def test_known_queries_find_the_same_top_hit(
    search: SearchService, q: str, top: str, understood: str
) -> None:
    found = search.search(SearchRequest(q=q))
    assert found.hits and found.hits[0].product_id == top, [h.title for h in found.hits]
    assert found.understood == understood


def test_filters_sorts_currencies_and_availability(search: SearchService) -> None:
    shoes = [h.product_id for h in search.search(SearchRequest(q="running shoes")).hits]
    assert shoes[:2] == ["p_shoes", "p_shoes_gone"]
    stocked = search.search(SearchRequest(q="running shoes", in_stock=True))
    assert [h.product_id for h in stocked.hits] == ["p_shoes"]
    found = search.search(
        SearchRequest(q="headphones", region="all", currency="USD", sort="price_asc")
    )
    prices = [h.price_minor for h in found.hits]
    assert prices == sorted(prices)
    assert next(h for h in found.hits if h.product_id == "p_us_headphones").price_minor == 19999
    assert found.hits[0].highlight is not None and "<b>" in found.hits[0].highlight


def test_facet_counts_equal_the_catalog(search: SearchService) -> None:
    expected = [d for d in DOCS if d.region == "eu" and "cat_fashion" in d.category_ids]
    found = search.search(SearchRequest(category="cat_fashion"))
    assert found.total == len(expected)
    assert dict(found.categories) == dict(Counter(d.category_id for d in expected))
    assert dict(found.brands) == dict(Counter(d.brand for d in expected if d.brand))
    assert sum(b.count for b in found.prices) == len(expected)


def test_alias_swap_and_rollback(index: ElasticSearchIndex) -> None:
    service = SearchService(index, FX, Synonyms([]), REGIONS, "us")
    before = index.current_version("us")
    extra = product("p_us_new", "Sonyx Travel Headphones", region="us", currency="USD")
    version = index.build_version("us", [*(d for d in DOCS if d.region == "us"), extra])
    index.activate("us", version)
    found = {h.product_id for h in service.search(SearchRequest(q="headphones", region="us")).hits}
    assert "p_us_new" in found
    assert rollback(index, "us") == (version, before)
    found = {h.product_id for h in service.search(SearchRequest(q="headphones", region="us")).hits}
    assert "p_us_new" not in found and "p_us_headphones" in found


def test_upserts_are_visible_after_commit(index: ElasticSearchIndex) -> None:
    changed = product(
        "p_kettle",
        "Tefala Electric Kettle",
        brand="Tefala",
        category="cat_home_kitchen_cookware",
        price=3500,
        available=0,
    )
    index.upsert([changed])
    index.commit()
    held = index.get("eu", ["p_kettle"])["p_kettle"]
    assert not held.in_stock
    assert index.find_by_sku([KNOWN[0].skus[0]])[KNOWN[0].skus[0]].product_id == KNOWN[0].product_id
