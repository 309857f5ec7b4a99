"""Crash safety of the checkout's waits on the payer: `souk serve` killed (kill -9, by a
failpoint) at each new step of the 3-D Secure / UPI path leaves no half-made order.

A clean server started afterwards (like any restart) recovers every saga: asked to act and
died → it waits again (202) and completes once the payer confirms; a webhook committed but
the checkout not driven → recovery finds the payment approved and completes it; approved and
saved but not captured → captured and paid; expired and voided but not settled → the order
cancelled, the stock back, ``payment_action_expired``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, free_port, register
from tests.integration.purchase.async_payment_helpers import (
    IN_WAREHOUSE,
    THREE_DS,
    age_action,
    cart_of,
    india_shopper,
    india_sku,
    payment_row,
    stock_in,
    upi_body,
    wait_for,
)
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    checkout_ids_of,
    filled_cart,
    order_of,
    saga_of,
    stock_of,
    stock_sku,
)
from tests.integration.purchase.test_checkout_crash import Server
from transactional.payments.upi_sandbox import SandboxUpiGateway
from transactional.shared.failpoints import CRASH_EXIT_CODE

UNITS = 3


@contextlib.contextmanager
def souk_serve(
    env: Mapping[str, str], home: Path, failpoint: str | None = None
) -> Iterator[Server]:
    """`souk serve` (no relay) with ``failpoint`` armed, once it answers (a loaded machine
    may take a while to start it); stopped on exit."""
    port = free_port()
    log = home / f"serve-{port}.log"
    souk = Path(sys.executable).with_name("souk")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(souk), "serve", "--port", str(port), "--no-relay"],
            env={**env, "SOUK_FAILPOINTS": failpoint or ""},
            cwd=home,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"souk serve exited early:\n{server.output()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"souk serve did not start:\n{server.output()}"
            time.sleep(0.2)
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
    warehouse: str
    shopper: dict[str, Any]
    body: dict[str, Any]
    key: str
    checkout_id: str | None = None

    def post(self, url: str) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/checkout",
            json=self.body,
            headers={**self.shopper["headers"], "Idempotency-Key": self.key},
            timeout=30,
        )

    def payment_id(self) -> str:
        assert self.checkout_id is not None
        return "pay_" + self.checkout_id.removeprefix("chk_")


def in_use(response: httpx.Response) -> bool:
    """A 409 "still being settled" (a busy machine outran the 1 s lease: recovery drives it)."""
    return response.status_code == 409 and response.json().get("code") == "idempotency_key_in_use"


def answered(url: str, scenario: Scenario, timeout_s: float = 40) -> httpx.Response:
    """Retry the checkout with its key until it answers (202 included)."""
    deadline = time.monotonic() + timeout_s
    while in_use(response := scenario.post(url)):
        assert time.monotonic() < deadline, f"{scenario.failpoint}: never answered"
        time.sleep(0.25)
    return response


def settled(url: str, scenario: Scenario, timeout_s: float = 40) -> httpx.Response:
    """Retry the checkout with its key until the answer is final (not in use, not 202)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = scenario.post(url)
        waiting = response.status_code == 202 or in_use(response)
        if not waiting:
            return response
        assert time.monotonic() < deadline, f"{scenario.failpoint}: never settled"
        time.sleep(0.25)


def dies(server: Any, trigger: Callable[[], Any], failpoint: str) -> None:
    """``trigger`` (an HTTP call, or nothing: a background step) kills the server there."""
    try:
        response = trigger()
    except httpx.TransportError:
        pass  # the process died mid-request, as it should
    else:
        assert response is None, f"{failpoint}: answered {response.status_code} {response.text}"
    assert server.process.wait(timeout=60) == CRASH_EXIT_CODE, server.output()
    assert f"failpoint {failpoint}" in server.output()


def test_a_server_killed_at_each_step_of_a_payers_wait_leaves_no_half_made_order(
    client: Any, engine: Engine, services: Services, endpoints: Endpoints, tmp_path: Path
) -> None:
    admin = admin_headers(services.tokens)
    eu_seller = approved_seller(client, admin)
    in_seller = approved_seller(client, admin, region="in")
    upi: SandboxUpiGateway = services["upi_sandbox"]

    def card_scenario(failpoint: str) -> Scenario:
        sku = stock_sku(client, eu_seller, UNITS)
        shopper = register(client)
        body = checkout_body(filled_cart(client, shopper, {sku: 1}), number=THREE_DS)
        return Scenario(failpoint, sku, "wh_eu_1", shopper, body, str(uuid.uuid4()))

    def upi_scenario(failpoint: str) -> Scenario:
        sku = india_sku(client, in_seller, UNITS)
        shopper = india_shopper(client)
        body = upi_body(cart_of(client, shopper, {sku: 1}, "INR"), "success@souk")
        return Scenario(failpoint, sku, IN_WAREHOUSE, shopper, body, str(uuid.uuid4()))

    asked = card_scenario("checkout.after_action_required")  # the processor asked; nothing saved
    hooked = upi_scenario("payments.after_webhook")  # webhook committed; the checkout not driven
    approved = card_scenario("checkout.after_action_completed")  # approved, saved; not captured
    expired = card_scenario("checkout.after_action_expired")  # voided, cancelled; not settled
    env = {
        **os.environ,
        "SOUK_DATABASE_URL": endpoints.database_url,
        "SOUK_REDIS_URL": endpoints.redis_url,
        "SOUK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "SOUK_HOME": str(tmp_path),
        "SOUK_JWT_SECRET": services.settings.jwt_secret,
        "SOUK_SAGA_RECOVERY_AFTER_S": "1",
        "SOUK_PAYMENT_ACTION_TTL_S": "600",  # deadlines are passed on purpose (age_action)
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
    }

    # Three checkouts wait on their payers (a clean server answers 202).
    with souk_serve(env, tmp_path) as server:
        for scenario in (hooked, approved, expired):
            response = answered(server.url, scenario)
            assert response.status_code == 202, response.text
            scenario.checkout_id = response.json()["checkout_id"]

    # Each dies at its step.
    with souk_serve(env, tmp_path, expired.failpoint) as server:
        age_action(engine, expired.checkout_id or "")  # its deadline passes: recovery expires it
        dies(server, lambda: None, expired.failpoint)
    # Voided and cancelled, not settled (the next server's recovery settles it).
    assert payment_row(engine, expired.payment_id())["status"] == "voided"
    assert saga_of(engine, expired.checkout_id or "")["status"] == "pending"
    with souk_serve(env, tmp_path, asked.failpoint) as server:
        dies(server, lambda: asked.post(server.url), asked.failpoint)
    (asked.checkout_id,) = checkout_ids_of(engine, asked.shopper["customer_id"])
    # Nothing saved after T1 (the next server's recovery makes it wait again).
    assert saga_of(engine, asked.checkout_id)["stage"] == "ordered"
    with souk_serve(env, tmp_path, hooked.failpoint) as server:
        reference = payment_row(engine, hooked.payment_id())["gateway_reference"]
        (webhook,) = upi.deliver(reference)
        dies(
            server,
            lambda: httpx.post(
                f"{server.url}/v1/payments/webhooks/sandbox-upi",
                content=webhook.body,
                headers={**webhook.headers, "Content-Type": "application/json"},
                timeout=30,
            ),
            hooked.failpoint,
        )
    with souk_serve(env, tmp_path, approved.failpoint) as server:
        dies(
            server,
            lambda: httpx.post(
                f"{server.url}/v1/payments/{approved.payment_id()}/3ds/confirm",
                json={"outcome": "approve"},
                headers=approved.shopper["headers"],
                timeout=30,
            ),
            approved.failpoint,
        )

    # Left as durable as the step each died after.
    assert payment_row(engine, hooked.payment_id())["status"] == "authorized"
    assert saga_of(engine, hooked.checkout_id or "")["stage"] == "action_required"
    assert saga_of(engine, approved.checkout_id or "")["stage"] == "authorized"
    assert payment_row(engine, approved.payment_id())["status"] == "authorized"
    for scenario in (asked, hooked, approved, expired):
        assert order_of(engine, scenario.checkout_id or "")["status"] != "paid"  # type: ignore[index]

    age_action(engine, hooked.checkout_id or "")  # recovery looks at it now, not at its deadline
    with souk_serve(env, tmp_path) as server:
        # Asked to act: recovery makes it wait again; the payer confirms, it completes.
        wait_for(
            lambda: saga_of(engine, asked.checkout_id or "")["stage"] == "action_required",
            what="the interrupted ask to be recovered",
        )
        waiting = answered(server.url, asked)
        assert waiting.status_code == 202, waiting.text
        confirmed = httpx.post(
            f"{server.url}{waiting.json()['next_action']['url']}",
            json={},
            headers=asked.shopper["headers"],
            timeout=30,
        )
        assert confirmed.status_code == 200, confirmed.text
        answers = {s.failpoint: settled(server.url, s) for s in (asked, hooked, approved, expired)}

    for scenario in (asked, hooked, approved):
        answer = answers[scenario.failpoint]
        assert answer.status_code == 201, (scenario.failpoint, answer.text)
        order = order_of(engine, scenario.checkout_id or "")
        assert order is not None and order["status"] == "paid", scenario.failpoint
        assert order["paid_minor"] == order["grand_total_minor"]
        assert payment_row(engine, scenario.payment_id())["status"] == "captured"
        assert saga_of(engine, scenario.checkout_id or "")["status"] == "completed"
        stock = stock_in(engine, scenario.sku, scenario.warehouse)
        assert stock == (UNITS - 1, 0), scenario.failpoint
    answer = answers[expired.failpoint]
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "payment_action_expired"
    assert order_of(engine, expired.checkout_id or "")["status"] == "cancelled"  # type: ignore[index]
    assert stock_of(engine, expired.sku) == (UNITS, 0)
    assert payment_row(engine, expired.payment_id())["status"] == "voided"
