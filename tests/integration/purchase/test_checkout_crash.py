"""Crash safety: `souk serve` killed at each step of the checkout leaves no half-made order.

One server per failpoint dies mid-checkout (``SOUK_FAILPOINTS``); a clean server started
afterwards (like any restart) recovers every saga: money held → the order is paid and the
stock sold; no money held → the order is cancelled (or was never placed) and the stock is
back; declined → the 402, nothing charged. A client retrying with the same Idempotency-Key
gets that final answer, and the cart of a completed checkout loses its bought lines and is
free again. Its sweeper also returns reservations that expired with nobody left to release
them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, free_port, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    APPROVED,
    DECLINED,
    WAREHOUSE,
    checkout_body,
    checkout_ids_of,
    filled_cart,
    order_of,
    reservations_of,
    saga_of,
    stock_of,
    stock_sku,
)
from transactional.inventory.counters import RedisStockCounters
from transactional.shared.failpoints import CRASH_EXIT_CODE

# Every durable point of the hot path (see transactional/checkout/service.py), newest first.
FAILPOINTS = (
    "checkout.after_complete",  # T2 committed; the cart's lines not removed yet
    "checkout.after_capture",  # money taken; T2 not committed
    "checkout.after_authorize",  # money held
    "checkout.after_decline",  # the processor said no; nothing recorded yet
    "checkout.after_order",  # T1 committed; the processor not called
    "checkout.before_order",  # the Redis gate took the units; nothing in PostgreSQL
)
ROLLED_FORWARD = {"checkout.after_complete", "checkout.after_capture", "checkout.after_authorize"}
DECLINING = {"checkout.after_decline"}
UNITS = 3


@dataclass
class Server:
    """A `souk serve` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def souk_serve(
    env: Mapping[str, str], home: Path, failpoint: str | None = None
) -> Iterator[Server]:
    """Start `souk serve` (no relay) and wait until it answers; stop it on exit."""
    port = free_port()
    log = home / f"serve-{port}.log"
    environment = {**env, "SOUK_FAILPOINTS": failpoint or ""}
    souk = Path(sys.executable).with_name("souk")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(souk), "serve", "--port", str(port), "--no-relay"],
            env=environment,
            cwd=home,  # no stray .env
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"souk serve exited early:\n{server.output()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"souk serve did not start:\n{server.output()}"
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Scenario:
    failpoint: str
    sku: str
    shopper: dict[str, Any]
    body: dict[str, Any]
    key: str


def claim_of(engine: Engine, cart_id: str) -> str | None:
    """The checkout holding the cart, if any."""
    with engine.connect() as connection:
        holder = connection.execute(
            text("SELECT checkout_id FROM checkout_cart_claims WHERE cart_id = :c"),
            {"c": cart_id},
        ).scalar_one_or_none()
    return None if holder is None else str(holder)


def cart_lines(client: Any, scenario: Scenario) -> list[str]:
    """The SKUs left in the scenario's cart."""
    cart = client.get(f"/v1/carts/{scenario.body['cart_id']}", headers=scenario.shopper["headers"])
    assert cart.status_code == 200, cart.text
    return [line["sku"] for line in cart.json()["lines"]]


def post(url: str, scenario: Scenario) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/checkout",
        json=scenario.body,
        headers={**scenario.shopper["headers"], "Idempotency-Key": scenario.key},
        timeout=30,
    )


def settled(url: str, scenario: Scenario, timeout_s: float = 30) -> httpx.Response:
    """Retry the checkout with its key until the answer is final (not "in use")."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = post(url, scenario)
        in_flight = response.status_code == 409 and (
            response.json().get("code") == "idempotency_key_in_use"
        )
        if not in_flight:
            return response
        assert time.monotonic() < deadline, f"{scenario.failpoint}: never settled"
        time.sleep(0.25)


def test_a_server_killed_at_each_failpoint_leaves_no_half_made_order(
    client: Any,
    engine: Engine,
    services: Services,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    scenarios = []
    for failpoint in FAILPOINTS:
        sku = stock_sku(client, seller, UNITS)
        shopper = register(client)
        number = DECLINED if failpoint in DECLINING else APPROVED
        body = checkout_body(filled_cart(client, shopper, {sku: 1}), number=number)
        scenarios.append(Scenario(failpoint, sku, shopper, body, str(uuid.uuid4())))
    # A reservation whose checkout vanished with its process: only the expiry sweeper frees it.
    orphan_sku = stock_sku(client, seller, UNITS)
    orphan = f"chk_orphan_{uuid.uuid4().hex}"
    services.provided["inventory"].reserve(orphan, [(orphan_sku, 2)], "eu")
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE reservations SET expires_at = now() - interval '1 second' "
                "WHERE checkout_id = :id"
            ),
            {"id": orphan},
        )
    assert stock_of(engine, orphan_sku) == (UNITS, 2)

    env = {
        **os.environ,
        "SOUK_DATABASE_URL": endpoints.database_url,
        "SOUK_REDIS_URL": endpoints.redis_url,
        "SOUK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "SOUK_HOME": str(tmp_path),
        "SOUK_JWT_SECRET": services.settings.jwt_secret,
        "SOUK_SAGA_RECOVERY_AFTER_S": "1",
        "SOUK_RESERVATION_TTL_S": "2",
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
    }

    for scenario in scenarios:
        with souk_serve(env, tmp_path, scenario.failpoint) as server:
            try:
                response = post(server.url, scenario)
            except httpx.TransportError:
                pass  # the process died mid-request, as it should
            else:
                raise AssertionError(
                    f"{scenario.failpoint}: answered {response.status_code} {response.text}"
                )
            assert server.process.wait(timeout=10) == CRASH_EXIT_CODE
            assert f"failpoint {scenario.failpoint}" in server.output()
        # Left half-done, as durable as the step it died after.
        left = checkout_ids_of(engine, scenario.shopper["customer_id"])
        if scenario.failpoint == "checkout.before_order":
            assert left == []  # nothing durable: Redis alone took the units
            continue
        (checkout_id,) = left
        completed = scenario.failpoint == "checkout.after_complete"
        assert saga_of(engine, checkout_id)["status"] == ("completed" if completed else "pending")
        assert reservations_of(engine, checkout_id) == ["committed" if completed else "held"]
        assert claim_of(engine, scenario.body["cart_id"]) == checkout_id

    with souk_serve(env, tmp_path) as server:
        answers = {s.failpoint: settled(server.url, s) for s in scenarios}
        deadline = time.monotonic() + 20
        # The sweeper frees the orphan's units and the carts of sagas that ended mid-way.
        while stock_of(engine, orphan_sku) != (UNITS, 0) or any(
            claim_of(engine, s.body["cart_id"]) is not None for s in scenarios
        ):
            assert time.monotonic() < deadline, "the sweeper never released everything"
            time.sleep(0.2)

    for scenario in scenarios:
        answer = answers[scenario.failpoint]
        (checkout_id,) = checkout_ids_of(engine, scenario.shopper["customer_id"])
        assert answer.json()["checkout_id"] == checkout_id
        order = order_of(engine, checkout_id)
        status = saga_of(engine, checkout_id)["status"]
        if scenario.failpoint == "checkout.before_order":
            # Nothing was stored for the key, so the retry checked out afresh.
            assert answer.status_code == 201, answer.text
            assert answer.headers.get("idempotent-replayed") is None
        else:
            assert answer.headers.get("idempotent-replayed") == "true", answer.text
        if scenario.failpoint in ROLLED_FORWARD or scenario.failpoint == "checkout.before_order":
            # Rolled forward: paid, sold, the shopper gets the order, the cart's lines gone.
            assert answer.status_code == 201, (scenario.failpoint, answer.text)
            assert status == "completed"
            assert order is not None and order["status"] == "paid"
            assert order["paid_minor"] == order["grand_total_minor"]
            assert stock_of(engine, scenario.sku) == (UNITS - 1, 0)
            assert reservations_of(engine, checkout_id) == ["committed"]
            assert cart_lines(client, scenario) == []
        elif scenario.failpoint in DECLINING:
            assert answer.status_code == 402, (scenario.failpoint, answer.text)
            assert answer.json()["decline_code"] == "card_declined"
            assert status == "failed"
            assert order is not None and order["status"] == "cancelled"
            assert stock_of(engine, scenario.sku) == (UNITS, 0)
            assert reservations_of(engine, checkout_id) == ["released"]
            assert cart_lines(client, scenario) == [scenario.sku]
        else:
            # Rolled back: nothing charged, the units are back on sale, the cart kept.
            assert answer.status_code == 409, (scenario.failpoint, answer.text)
            assert answer.json()["code"] == "checkout_interrupted"
            assert status == "failed"
            assert order is None or order["status"] == "cancelled"
            assert stock_of(engine, scenario.sku) == (UNITS, 0)
            assert reservations_of(engine, checkout_id) == ["released"]
            assert cart_lines(client, scenario) == [scenario.sku]
        assert claim_of(engine, scenario.body["cart_id"]) is None, scenario.failpoint
    # The units the crashed gate took from Redis (its counter is low, never high: PostgreSQL
    # decided meanwhile) are repaired by reconcile (`souk serve` runs it every minute too).
    inventory = services["inventory"]
    gated = next(s for s in scenarios if s.failpoint == "checkout.before_order")
    (counter,) = RedisStockCounters(services.redis).read([(gated.sku, WAREHOUSE)])
    assert counter is not None and counter <= UNITS - 1
    inventory.reconcile(repair=True, settle_s=0.05)
    assert inventory.reconcile(repair=False, settle_s=0.05).drifted == 0
    assert stock_of(engine, gated.sku) == (UNITS - 1, 0)
    with engine.connect() as connection:
        reason = connection.execute(
            text("SELECT release_reason FROM reservations WHERE checkout_id = :id"), {"id": orphan}
        ).scalar_one()
    assert reason == "expired"
