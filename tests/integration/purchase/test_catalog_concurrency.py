"""Races on the real database: one SKU listed twice at once, two KYC decisions at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from schemas.ids import uuid7
from souk.services import Services
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import apply_as_seller, approved_seller, fresh_sku
from transactional.catalog.model import (
    DuplicateSku,
    Product,
    Variant,
    product_id_for,
    shard_of,
)
from transactional.catalog.repository import SqlCatalogUnitOfWork
from transactional.catalog.service import NewProduct, NewVariant
from transactional.sellers.model import IllegalKycTransition


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at the same moment; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_one_sku_listed_by_two_sellers_at_once_goes_to_exactly_one(
    client: Any, services: Services
) -> None:
    admin = admin_headers(services.tokens)
    catalog = services["catalog"]
    for _ in range(2):
        sellers = [approved_seller(client, admin) for _ in range(2)]
        sku = fresh_sku("RACE")
        entered = NewProduct(
            title="Contested", category_id="cat_toys", variants=[NewVariant(sku, {"EUR": 500})]
        )
        results = _race(
            [lambda s=s, e=entered: catalog.create_product(s["customer_id"], e) for s in sellers]
        )
        won = [r for r in results if not isinstance(r, Exception)]
        lost = [r for r in results if isinstance(r, Exception)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], DuplicateSku) and lost[0].extra["skus"] == [sku]
        assert catalog.offers([sku])[sku].product_id == won[0].product_id


def test_a_sku_committed_after_our_check_is_still_a_duplicate(services: Services) -> None:
    # Deterministic version of the race: A inserts (uncommitted), B passes the pre-check,
    # blocks on the unique index, and must get DuplicateSku (not a 500) once A commits.
    engine, outbox = services.engine, services.outbox
    sku = fresh_sku("RACE")

    def product() -> Product:
        value = uuid7()
        product_id = product_id_for(value, 16)
        now = datetime.now(UTC)
        return Product(
            product_id,
            shard_of(product_id),
            "sel_race",
            "Race",
            "",
            None,
            "cat_toys",
            {},
            [Variant(sku, {"EUR": 100})],
            [],
            "EUR",
            "active",
            1,
            now,
            now,
        )

    with SqlCatalogUnitOfWork(engine, outbox) as first:
        first.catalog.add_product(product())
        with ThreadPoolExecutor(1) as pool:

            def second() -> Exception | None:
                with SqlCatalogUnitOfWork(engine, outbox) as uow:
                    try:
                        uow.catalog.add_product(product())
                    except DuplicateSku as error:
                        return error
                    uow.commit()
                return None

            outcome = pool.submit(second)
            time.sleep(0.3)  # let the second transaction reach the unique index and wait
            assert not outcome.done()
            first.commit()
            error = outcome.result(timeout=10)
    assert isinstance(error, DuplicateSku) and error.extra["skus"] == [sku]


def test_two_kyc_decisions_at_once_record_exactly_one(client: Any, services: Services) -> None:
    sellers = services["sellers"]
    seller_id = apply_as_seller(client, register(client)).json()["seller_id"]
    results = _race(
        [
            lambda: sellers.decide_kyc(seller_id, "approved", reviewer_id="adm_a"),
            lambda: sellers.decide_kyc(seller_id, "rejected", reviewer_id="adm_b", reason="no"),
        ]
    )
    assert sum(isinstance(r, IllegalKycTransition) for r in results) == 1, results
    seller = sellers.get(seller_id)
    assert len(seller.history) == 2  # the application and the one decision that won
    assert seller.kyc_status == seller.history[-1].to_status
