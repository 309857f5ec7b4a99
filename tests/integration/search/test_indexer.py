"""The indexer on real topics: a product listed through the API is searchable within seconds;
stock and later snapshots update it; a rebuild from PostgreSQL holds the same product."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine

from serving.search.indexer import SearchIndexer, indexed_topics
from serving.search.model import SearchRequest
from serving.search.reindex import reindex
from serving.search.service import SearchService
from serving.search.tantivy_index import TantivySearchIndex
from serving.search.text import SYNONYMS_FILE, Synonyms
from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from tests.integration.search.catalog import FX, FX_RATES
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher, create_topics
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.relay import Relay

REGIONS = ["eu"]


def relay_all(endpoints: Endpoints) -> None:
    """Publish every committed outbox row, as `souk serve`'s relay does."""
    relay = Relay(
        PostgresOutboxStore(endpoints.database_url),
        KafkaEventPublisher(KafkaClientSettings(endpoints.kafka_bootstrap)),
    )
    try:
        relay.drain()
    finally:
        relay.close()


@pytest.fixture
def live_index(
    endpoints: Endpoints, tmp_path: Path
) -> Iterator[tuple[SearchService, SearchIndexer]]:
    """A private index kept current by an indexer thread (its own consumer group)."""
    create_topics(endpoints.kafka_bootstrap, indexed_topics(REGIONS), partitions=3)
    index = TantivySearchIndex(tmp_path / "search", REGIONS, FX_RATES)
    indexer = SearchIndexer(
        index,
        REGIONS,
        KafkaClientSettings(endpoints.kafka_bootstrap, session_timeout_ms=6000),
        group=f"search-test-{secrets.token_hex(4)}",
        batch_wait_s=0.2,
    )
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop,), daemon=True)
    thread.start()
    service = SearchService(
        index, FX, Synonyms.from_file(SYNONYMS_FILE), REGIONS, "eu", vocabulary_ttl_s=0.01
    )
    yield service, indexer
    stop.set()
    thread.join(timeout=20)
    index.close()


def wait_for(check: Any, timeout_s: float = 30.0) -> float:
    """Seconds until ``check()`` is truthy (fails after ``timeout_s``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "not searchable in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_listed_product_is_searchable_within_seconds_and_follows_its_events(
    app: Litestar,
    services: Services,
    endpoints: Endpoints,
    engine: Engine,
    live_index: tuple[SearchService, SearchIndexer],
) -> None:
    search, indexer = live_index
    word = "zq" + secrets.token_hex(3).translate(str.maketrans("0123456789", "ghijklmnop"))
    with TestClient(app, raise_server_exceptions=False) as client:
        seller = approved_seller(client, admin_headers(services.tokens))
        sku = fresh_sku()
        product = list_product(
            client,
            seller,
            skus_prices={sku: 2599},
            title=f"Acme {word.capitalize()} Wireless Earbuds",
            brand="Acme",
            category_id="cat_electronics_audio",
        )
        pid = product["product_id"]
        relay_all(endpoints)
        published = time.monotonic()

        def hits(q: str, **params: Any) -> list[Any]:
            return search.search(SearchRequest(q=q, **params)).hits

        wait_for(lambda: any(h.product_id == pid for h in hits(word)))
        latency = time.monotonic() - published
        print(f"relay -> searchable: {latency:.2f} s")
        assert latency < 10
        # A typo of the new word finds it too (the vocabulary follows the index).
        wait_for(lambda: any(h.product_id == pid for h in hits(word[:-1] + "x")), 10)
        first = hits(word)[0]
        assert (first.price_minor, first.in_stock) == (2599, False)

        # Stock arrives: the product becomes buyable in the index.
        stocked = client.put(
            f"/v1/inventory/{sku}/warehouses/wh_eu_1",
            json={"on_hand": 7},
            headers=seller["headers"],
        )
        assert stocked.status_code in (200, 201), stocked.text
        # A new snapshot (and its price change) replaces the document.
        edited = client.patch(
            f"/v1/products/{pid}",
            json={
                "title": f"Acme {word.capitalize()} Wireless Earbuds Pro",
                "prices": {sku: {"EUR": 1999}},
            },
            headers=seller["headers"],
        )
        assert edited.status_code == 200, edited.text
        relay_all(endpoints)
        wait_for(
            lambda: any(
                h.product_id == pid
                and h.in_stock
                and h.price_minor == 1999
                and h.title.endswith("Pro")
                for h in hits(word, in_stock=True)
            )
        )
    assert indexer.stats.rejected == 0

    # A rebuild from PostgreSQL holds the same state, and replaces the version atomically.
    built = reindex(search.index, engine, "eu")
    assert built.previous is not None and built.version != built.previous
    rebuilt = [h for h in hits(word) if h.product_id == pid]
    assert rebuilt and rebuilt[0].in_stock and rebuilt[0].price_minor == 1999
