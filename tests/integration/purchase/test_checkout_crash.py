"""Crash safety: `souk serve` killed at each checkout failpoint leaves no half-made order.

One server per failpoint dies mid-checkout (``SOUK_FAILPOINTS``); a clean server started
afterwards (like any restart) recovers every saga: money held → the order is paid and the
stock sold; no money held → the order is cancelled (or was never placed) and the stock is back.
A client retrying with the same Idempotency-Key gets that final answer. Its sweeper also
returns reservations that expired with nobody left to release them.
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
    checkout_body,
    checkout_ids_of,
    filled_cart,
    order_of,
    reservations_of,
    saga_of,
    stock_of,
    stock_sku,
)
from transactional.shared.failpoints import CRASH_EXIT_CODE

# Ordered so that a server armed with one failpoint, recovering the sagas the servers before
# it left, never passes its own failpoint while doing so (it only dies on our request).
FAILPOINTS = (
    "checkout.after_capture",
    "checkout.after_authorize",
    "checkout.after_order",
    "checkout.after_reserve",
)
MONEY_HELD = {"checkout.after_capture", "checkout.after_authorize"}
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
        body = checkout_body(filled_cart(client, shopper, {sku: 1}))
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
        # Left half-done: the saga is still pending and its stock still held (sold already
        # once the money is captured: the stock is committed before the capture).
        (checkout_id,) = checkout_ids_of(engine, scenario.shopper["customer_id"])
        assert saga_of(engine, checkout_id)["status"] == "pending"
        sold = scenario.failpoint == "checkout.after_capture"
        assert reservations_of(engine, checkout_id) == ["committed" if sold else "held"]

    with souk_serve(env, tmp_path) as server:
        answers = {s.failpoint: settled(server.url, s) for s in scenarios}
        deadline = time.monotonic() + 15
        while stock_of(engine, orphan_sku) != (UNITS, 0):
            assert time.monotonic() < deadline, "the expired reservation was never released"
            time.sleep(0.2)

    for scenario in scenarios:
        answer = answers[scenario.failpoint]
        (checkout_id,) = checkout_ids_of(engine, scenario.shopper["customer_id"])
        assert answer.headers.get("idempotent-replayed") == "true", answer.text
        assert answer.json()["checkout_id"] == checkout_id
        order = order_of(engine, checkout_id)
        with engine.connect() as connection:
            status = connection.execute(
                text("SELECT status FROM checkouts WHERE checkout_id = :id"), {"id": checkout_id}
            ).scalar_one()
        if scenario.failpoint in MONEY_HELD:
            # Rolled forward: paid, sold, the shopper gets the order.
            assert answer.status_code == 201, (scenario.failpoint, answer.text)
            assert status == "completed"
            assert order is not None and order["status"] == "paid"
            assert order["paid_minor"] == order["grand_total_minor"]
            assert stock_of(engine, scenario.sku) == (UNITS - 1, 0)
            assert reservations_of(engine, checkout_id) == ["committed"]
        else:
            # Rolled back: nothing charged, the units are back on sale.
            assert answer.status_code == 409, (scenario.failpoint, answer.text)
            assert answer.json()["code"] == "checkout_interrupted"
            assert status == "failed"
            assert order is None or order["status"] == "cancelled"
            assert stock_of(engine, scenario.sku) == (UNITS, 0)
            assert reservations_of(engine, checkout_id) == ["released"]
    with engine.connect() as connection:
        reason = connection.execute(
            text("SELECT release_reason FROM reservations WHERE checkout_id = :id"), {"id": orphan}
        ).scalar_one()
    assert reason == "expired"
