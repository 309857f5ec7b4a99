"""Crash safety: `souk serve` killed at each step of a return's refund gives the money back
exactly once. The clean server started afterwards finishes the refund on its own (its
housekeeping), with one gateway refund, one ``payment.refunded`` and one ``refund.issued``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_crash import souk_serve
from tests.integration.returns.helpers import (
    delivered_order,
    events_of,
    gateway_refunded,
    line_of,
    payment_row,
    refunds_of,
    stock_row,
)
from transactional.shared.failpoints import CRASH_EXIT_CODE

# The durable points of a refund (transactional/returns/service.py), in order.
FAILPOINTS = (
    "returns.after_plan",  # the plan committed; no money moved
    "returns.after_refund",  # the money given back and recorded; refund.issued not committed
)
UNITS = 5


def test_a_server_killed_at_each_refund_step_refunds_exactly_once_after_restart(
    client: Any, engine: Engine, services: Services, endpoints: Endpoints, tmp_path: Path
) -> None:
    admin = admin_headers(services.tokens)
    seller = approved_seller(client, admin)
    cases = []
    for failpoint in FAILPOINTS:
        shopper, order, (sku,) = delivered_order(client, admin, seller, {1500: 2}, units=UNITS)
        line_id = line_of(order, sku)["line_id"]
        asked = client.post(
            f"/v1/orders/{order['order_id']}/returns",
            json={"lines": [{"line_id": line_id, "quantity": 1}]},
            headers=shopper["headers"],
        )
        assert asked.status_code == 201, asked.text
        return_id = asked.json()["return_id"]
        approved = client.post(f"/v1/returns/{return_id}/approve", json={}, headers=admin)
        assert approved.status_code == 200, approved.text
        cases.append((failpoint, return_id, line_id, order["payment_id"], sku))

    env = {
        **os.environ,
        "SOUK_DATABASE_URL": endpoints.database_url,
        "SOUK_REDIS_URL": endpoints.redis_url,
        "SOUK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "SOUK_HOME": str(tmp_path),
        "SOUK_JWT_SECRET": services.settings.jwt_secret,
        # The crashing servers leave earlier cases alone (their own request dies on purpose).
        "SOUK_RETURNS_RETRY_AFTER_S": "3600",
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
    }
    for failpoint, return_id, line_id, payment_id, _ in cases:
        with souk_serve(env, tmp_path, failpoint) as server:
            try:
                response = httpx.post(
                    f"{server.url}/v1/returns/{return_id}/receive",
                    json={"lines": [{"line_id": line_id, "resellable": 1}]},
                    headers=admin,
                    timeout=30,
                )
            except httpx.TransportError:
                pass  # the process died mid-request, as it should
            else:
                raise AssertionError(f"{failpoint}: answered {response.status_code}")
            assert server.process.wait(timeout=10) == CRASH_EXIT_CODE
            assert f"failpoint {failpoint}" in server.output()
        # Left half-done, as durable as the step it died after.
        left = client.get(f"/v1/returns/{return_id}", headers=admin).json()
        assert (left["status"], left["restocked"]) == ("received", True)
        assert left["refund"] is not None and not left["refund"]["issued"]
        moved = refunds_of(engine, payment_id)
        assert moved == ([] if failpoint == "returns.after_plan" else [1500])
        assert "refund.issued" not in [e["type"] for e in events_of(engine, return_id)]

    # The restarted server's housekeeping finishes what is left untouched for a second.
    with souk_serve({**env, "SOUK_RETURNS_RETRY_AFTER_S": "1"}, tmp_path) as server:
        deadline = time.monotonic() + 30
        while not all(
            client.get(f"/v1/returns/{case[1]}", headers=admin).json()["status"] == "refunded"
            for case in cases
        ):
            assert time.monotonic() < deadline, f"never finished:\n{server.output()}"
            time.sleep(0.25)
        # A client retrying the refund by hand after the restart changes nothing.
        for _, return_id, *_ in cases:
            again = httpx.post(
                f"{server.url}/v1/returns/{return_id}/refund", json={}, headers=admin, timeout=30
            )
            assert again.status_code == 200, again.text

    for failpoint, return_id, _, payment_id, sku in cases:
        assert refunds_of(engine, payment_id) == [1500], failpoint
        assert gateway_refunded(engine, payment_id) == 1500, failpoint
        assert payment_row(engine, payment_id)["refunded_minor"] == 1500, failpoint
        types = [e["type"] for e in events_of(engine, return_id)]
        assert types.count("refund.issued") == 1, (failpoint, types)
        paid_back = [e for e in events_of(engine, payment_id) if e["type"] == "payment.refunded"]
        assert len(paid_back) == 1, failpoint
        assert stock_row(engine, sku) == (UNITS - 1, 0, 0), failpoint  # one of two came back
