"""UPI collect through HTTP on the real stack: the checkout waits (202) until the UPI
sandbox's signed webhook says the payer approved, declined, or let the collect lapse; the
webhook endpoint refuses bad signatures, stale timestamps and replays, and applies duplicate
and out-of-order deliveries once, also when they race."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers
from tests.integration.purchase.async_payment_helpers import (
    IN_WAREHOUSE,
    age_action,
    cart_of,
    deliveries_of,
    india_shopper,
    india_sku,
    payment_row,
    post_webhook,
    signed,
    stock_in,
    upi_body,
)
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import order_of, outbox_types, saga_of
from transactional.payments.upi_sandbox import SandboxUpiGateway

UNITS = 5


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved India seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens), region="in")


def start(client: Any, seller: dict[str, Any], vpa: str) -> dict[str, Any]:
    """A UPI checkout waiting on the payer: its ids, SKU, key and the gateway reference."""
    sku = india_sku(client, seller, UNITS)
    shopper = india_shopper(client)
    body = upi_body(cart_of(client, shopper, {sku: 1}, "INR"), vpa)
    key = str(uuid.uuid4())
    response = client.post(
        "/v1/checkout", json=body, headers={**shopper["headers"], "Idempotency-Key": key}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "requires_action"
    assert answer["next_action"]["type"] == "upi_collect"
    assert answer["next_action"]["vpa"] == vpa
    payment_id = answer["payment"]["payment_id"]
    return {
        "shopper": shopper,
        "sku": sku,
        "key": key,
        "body": body,
        "checkout_id": answer["checkout_id"],
        "payment_id": payment_id,
        "total": answer["totals"]["grand_total_minor"],
    }


def reference_of(engine: Engine, started: dict[str, Any]) -> str:
    reference = payment_row(engine, started["payment_id"])["gateway_reference"]
    assert reference is not None and reference.startswith("upi_")
    return str(reference)


def final(client: Any, started: dict[str, Any]) -> Any:
    """The checkout's answer for its key now."""
    return client.post(
        "/v1/checkout",
        json=started["body"],
        headers={**started["shopper"]["headers"], "Idempotency-Key": started["key"]},
    )


def sandbox(services: Services) -> SandboxUpiGateway:
    upi: SandboxUpiGateway = services["upi_sandbox"]
    return upi


def test_an_approved_collect_webhook_pays_the_order(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "success@souk")
    reference = reference_of(engine, started)
    assert saga_of(engine, started["checkout_id"])["stage"] == "action_required"
    assert payment_row(engine, started["payment_id"])["method"] == "upi"
    assert payment_row(engine, started["payment_id"])["gateway"] == "sandbox-upi"

    (webhook,) = sandbox(services).deliver(reference)
    response = post_webhook(client, webhook)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    saga = saga_of(engine, started["checkout_id"])
    assert saga["status"] == "completed"
    order = order_of(engine, started["checkout_id"])
    assert order is not None and order["status"] == "paid"
    assert order["paid_minor"] == started["total"]
    assert stock_in(engine, started["sku"], IN_WAREHOUSE) == (UNITS - 1, 0)
    assert payment_row(engine, started["payment_id"])["status"] == "captured"
    assert final(client, started).status_code == 201
    assert outbox_types(engine, started["payment_id"]) == [
        "payment.action_required",
        "payment.authorized",
        "payment.captured",
    ]
    # The provider retries the same delivery: a replay, 409, nothing booked.
    again = post_webhook(client, sandbox(services).redeliver(reference))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "webhook_replayed"
    # Out of order: a failure (another delivery id) after the success changes nothing.
    late = post_webhook(
        client,
        signed(reference, "payment.failed", started["total"], failure_code="payer_declined"),
    )
    assert late.status_code == 200 and late.json()["outcome"] == "ignored"
    stale_news = post_webhook(client, signed(reference, "payment.authorized", started["total"]))
    assert stale_news.status_code == 200 and stale_news.json()["outcome"] == "ignored"
    assert payment_row(engine, started["payment_id"])["status"] == "captured"
    assert outbox_types(engine, started["payment_id"]).count("payment.authorized") == 1
    assert [d["outcome"] for d in deliveries_of(engine, reference)] == [
        "applied",
        "ignored",
        "ignored",
    ]


def test_a_declined_collect_fails_the_checkout_402_and_gives_the_stock_back(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "failure@souk")
    reference = reference_of(engine, started)

    acknowledged = sandbox(services).deliver_to(
        lambda webhook: int(post_webhook(client, webhook).status_code)
    )

    assert acknowledged >= 1
    saga = saga_of(engine, started["checkout_id"])
    assert (saga["status"], saga["payment_status"]) == ("failed", "declined")
    assert order_of(engine, started["checkout_id"])["status"] == "cancelled"  # type: ignore[index]
    assert stock_in(engine, started["sku"], IN_WAREHOUSE) == (UNITS, 0)
    answer = final(client, started)
    assert answer.status_code == 402
    assert answer.json()["decline_code"] == "payer_declined"
    assert payment_row(engine, started["payment_id"])["status"] == "declined"
    # An approval arriving after the decline is stale news.
    late = post_webhook(client, signed(reference, "payment.authorized", started["total"]))
    assert late.status_code == 200 and late.json()["outcome"] == "ignored"
    assert payment_row(engine, started["payment_id"])["status"] == "declined"


def test_a_collect_nobody_answers_expires_and_cancels_the_order(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "timeout@souk")
    reference = reference_of(engine, started)
    # The payer stays silent: nothing to deliver before the collect lapses.
    assert sandbox(services).deliver(reference) == []
    services["checkout"].recover()
    assert saga_of(engine, started["checkout_id"])["stage"] == "action_required"

    age_action(engine, started["checkout_id"])
    services["checkout"].recover()

    saga = saga_of(engine, started["checkout_id"])
    assert (saga["status"], saga["payment_status"]) == ("failed", "voided")
    assert order_of(engine, started["checkout_id"])["status"] == "cancelled"  # type: ignore[index]
    assert stock_in(engine, started["sku"], IN_WAREHOUSE) == (UNITS, 0)
    answer = final(client, started)
    assert answer.status_code == 409 and answer.json()["code"] == "payment_action_expired"
    # The collect was withdrawn at the gateway: a late approval cannot take the money.
    late = post_webhook(client, signed(reference, "payment.authorized", started["total"]))
    assert late.json()["outcome"] == "ignored"
    assert payment_row(engine, started["payment_id"])["status"] == "voided"


def test_the_gateways_own_expiry_webhook_fails_the_checkout(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "timeout@souk")
    reference = reference_of(engine, started)
    with engine.begin() as connection:  # the collect lapsed at the provider
        connection.execute(
            text("UPDATE sandbox_upi_collects SET expires_at = now() WHERE reference = :r"),
            {"r": reference},
        )

    (webhook,) = sandbox(services).deliver(reference)
    assert post_webhook(client, webhook).status_code == 200

    saga = saga_of(engine, started["checkout_id"])
    assert saga["status"] == "failed"
    assert final(client, started).json()["code"] == "payment_action_expired"
    assert stock_in(engine, started["sku"], IN_WAREHOUSE) == (UNITS, 0)


def test_bad_signatures_stale_timestamps_and_unknown_providers_change_nothing(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "success@souk")
    reference = reference_of(engine, started)
    total = started["total"]
    forged = signed(reference, "payment.authorized", total, secret="whsec_guessed")
    stale = signed(
        reference, "payment.authorized", total, at=datetime.now(UTC) - timedelta(hours=1)
    )
    unsigned = signed(reference, "payment.authorized", total)
    tampered = signed(reference, "payment.authorized", total)
    tampered_body = tampered.body.replace(str(total).encode(), str(total - 1).encode())

    answers = [
        post_webhook(client, forged),
        post_webhook(client, stale),
        client.post(
            "/v1/payments/webhooks/sandbox-upi",
            content=unsigned.body,
            headers={"Content-Type": "application/json"},
        ),
        client.post(
            "/v1/payments/webhooks/sandbox-upi",
            content=tampered_body,
            headers={**tampered.headers, "Content-Type": "application/json"},
        ),
        client.post(
            "/v1/payments/webhooks/unknown-psp",
            content=unsigned.body,
            headers={**unsigned.headers, "Content-Type": "application/json"},
        ),
    ]

    assert [a.status_code for a in answers] == [401, 401, 401, 401, 404]
    for answer in answers:
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert answers[1].json()["code"] == "webhook_signature_invalid"
    assert answers[1].json()["reason"] == "stale_timestamp"
    assert deliveries_of(engine, reference) == []
    assert payment_row(engine, started["payment_id"])["status"] == "pending"
    assert saga_of(engine, started["checkout_id"])["stage"] == "action_required"
    assert outbox_types(engine, started["payment_id"]) == ["payment.action_required"]
    # A signed body that is no delivery is a 422, and books nothing either.
    junk = signed(reference, "payment.refunded", total)
    assert post_webhook(client, junk).status_code == 422
    assert deliveries_of(engine, reference) == []
    # A charge no payment knows (yet): 404, not recorded, so the provider's retry counts.
    nobodys = post_webhook(client, signed("upi_unknown", "payment.authorized", total))
    assert (nobodys.status_code, nobodys.json()["code"]) == (404, "unknown_charge")
    assert deliveries_of(engine, "upi_unknown") == []


def test_the_same_delivery_posted_concurrently_is_applied_exactly_once(
    live_url: str, engine: Engine, services: Services, client: Any, seller: dict[str, Any]
) -> None:
    started = start(client, seller, "success@souk")
    reference = reference_of(engine, started)
    (webhook,) = sandbox(services).deliver(reference)
    twin = signed(reference, "payment.authorized", started["total"])  # a duplicate, new id
    barrier = threading.Barrier(6)
    statuses: list[int] = []
    lock = threading.Lock()

    def post(delivery: Any) -> None:
        barrier.wait()
        response = httpx.post(
            f"{live_url}/v1/payments/webhooks/sandbox-upi",
            content=delivery.body,
            headers={**delivery.headers, "Content-Type": "application/json"},
            timeout=60,
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(webhook,)) for _ in range(4)]
    threads += [threading.Thread(target=post, args=(twin,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Each delivery id is taken once (the rest are replays); one of the two ids applies.
    assert sorted(statuses) == [200, 200, 409, 409, 409, 409]
    outcomes = sorted(d["outcome"] for d in deliveries_of(engine, reference))
    assert outcomes == ["applied", "ignored"]
    assert outbox_types(engine, started["payment_id"]).count("payment.authorized") == 1
    assert outbox_types(engine, started["payment_id"]).count("payment.captured") == 1
    assert payment_row(engine, started["payment_id"])["status"] == "captured"
    assert saga_of(engine, started["checkout_id"])["status"] == "completed"
    assert stock_in(engine, started["sku"], IN_WAREHOUSE) == (UNITS - 1, 0)


def test_upi_outside_india_and_malformed_vpas_are_422_before_anything_is_held(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = india_sku(client, seller, UNITS)
    shopper = india_shopper(client)
    cart_id = cart_of(client, shopper, {sku: 1}, "INR")
    for method, code in (
        ({"type": "upi", "vpa": "not-a-vpa"}, "invalid_vpa"),
        ({"type": "upi"}, "invalid_payment_method"),
        ({"type": "card", "vpa": "success@souk"}, "invalid_payment_method"),
    ):
        body = {**upi_body(cart_id, "x@y"), "payment_method": method}
        response = client.post(
            "/v1/checkout",
            json=body,
            headers={**shopper["headers"], "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code
    assert stock_in(engine, sku, IN_WAREHOUSE) == (UNITS, 0)


def test_the_cli_plays_the_payers_and_delivers_their_webhooks(
    client: Any,
    engine: Engine,
    live_url: str,
    endpoints: Endpoints,
    services: Services,
    seller: dict[str, Any],
    tmp_path: Path,
) -> None:
    approve = start(client, seller, "success@souk")
    decline = start(client, seller, "failure@souk")
    env = {
        **os.environ,
        "SOUK_DATABASE_URL": endpoints.database_url,
        "SOUK_HOME": str(tmp_path),
        "SOUK_JWT_SECRET": services.settings.jwt_secret,
    }
    souk = Path(sys.executable).with_name("souk")

    ran = subprocess.run(
        [str(souk), "payments", "sandbox", "deliver", "--url", live_url],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert ran.returncode == 0, ran.stderr
    assert "delivered" in ran.stdout
    assert saga_of(engine, approve["checkout_id"])["status"] == "completed"
    assert saga_of(engine, decline["checkout_id"])["status"] == "failed"
    assert final(client, approve).status_code == 201
    assert final(client, decline).status_code == 402
    # Acknowledged: nothing of these two is sent again.
    again = subprocess.run(
        [str(souk), "payments", "sandbox", "deliver", "--url", live_url],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    for started in (approve, decline):
        reference = reference_of(engine, started)
        assert len(deliveries_of(engine, reference)) == 1
