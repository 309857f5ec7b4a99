"""Lock order on the real database: T2 (a checkout's sale) racing another checkout's T1 on the
same stock rows never deadlocks. Every path locks stock rows in (sku, warehouse) order; a
set-based UPDATE would lock them in hash order, and did deadlock against T1."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from souk.services import Services
from tests.integration.http import admin_headers
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import WAREHOUSE, stock_sku
from transactional.checkout.pipelined import PipelinedCheckoutUnitOfWork


def test_a_sale_racing_another_checkouts_holds_on_the_same_rows_never_deadlocks(
    client: Any, services: Services
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))

    def hot() -> PipelinedCheckoutUnitOfWork:
        return PipelinedCheckoutUnitOfWork(services.engine.raw_connection, services.outbox)

    outcomes: list[tuple[str, str]] = []
    for _ in range(8):  # hash order differs between SKU pairs: try several
        first, second = sorted([stock_sku(client, seller, 10), stock_sku(client, seller, 10)])
        sold = f"chk_locks_{uuid.uuid4().hex}"
        services["inventory"].reserve(sold, [(first, 1), (second, 1)], "eu")
        result: dict[str, str] = {}
        # Another checkout's T1 holds the first row (sorted order), its transaction open.
        with hot() as t1:
            t1.begin()
            t1.stock.hold(first, WAREHOUSE, 1)
            t1.sync()

            def sale(sold: str, result: dict[str, str]) -> None:
                try:
                    with hot() as t2:
                        t2.begin()
                        moves = t2.stock.commit_checkout(
                            sold, f"ord_eu_{uuid.uuid4().hex}", datetime.now(UTC)
                        )
                        t2.sync()
                        assert len(moves.get()) == 2
                        t2.commit()
                    result["t2"] = "ok"
                except Exception as error:  # the deadlock victim, if any
                    result["t2"] = type(error).__name__

            racer = threading.Thread(target=sale, args=(sold, result))
            racer.start()
            time.sleep(0.3)  # T2 is waiting on the first row now
            try:
                t1.stock.hold(second, WAREHOUSE, 1)
                t1.sync()
                t1.rollback()
                result["t1"] = "ok"
            except Exception as error:
                result["t1"] = type(error).__name__
        racer.join(timeout=30)
        outcomes.append((result.get("t1", "?"), result.get("t2", "?")))
    assert outcomes == [("ok", "ok")] * 8
