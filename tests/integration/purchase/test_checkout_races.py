"""The saga against other actors on the real stack: cancels mid-payment, recovery during a slow
authorization, a reservation swept while paying, the cart changing, other customers' tokens,
and sagas that can never finish. Each ends settled, with its money and stock accounted for."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    ADDRESS,
    APPROVED,
    checkout_body,
    checkout_ids_of,
    filled_cart,
    order_of,
    post_checkout,
    reservations_of,
    saga_of,
    stock_of,
    stock_sku,
)
from transactional.checkout.adapters import (
    CartsAdapter,
    OrdersAdapter,
    PaymentsAdapter,
    StockAdapter,
)
from transactional.checkout.dto import render
from transactional.checkout.model import (
    Card,
    CheckoutRequest,
    PaymentMethod,
    ShippingAddress,
)
from transactional.checkout.pipelined import PipelinedCheckoutUnitOfWork
from transactional.checkout.repository import SqlCheckoutUnitOfWork
from transactional.checkout.service import CheckoutReply, CheckoutService
from transactional.payments.model import Payment
from transactional.shared.auth import Principal

LEASE_S = 30.0


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def saga(
    services: Services,
    *,
    orders: OrdersAdapter | None = None,
    payments: PaymentsAdapter | None = None,
    skew_s: float = 0.0,
    max_recovery_attempts: int = 5,
) -> CheckoutService:
    """A checkout service on the real slices (adapters swappable), its clock ``skew_s`` ahead."""
    return CheckoutService(
        lambda: SqlCheckoutUnitOfWork(services.engine, services.outbox),
        lambda: PipelinedCheckoutUnitOfWork(services.engine.raw_connection, services.outbox),
        carts=CartsAdapter(services["carts"]),
        stock=StockAdapter(services["inventory"]),
        orders=orders or OrdersAdapter(services["orders"]),
        payments=payments or PaymentsAdapter(services["payments"]),
        render=render,
        card_key=b"races",
        lease_s=LEASE_S,
        idempotency_ttl_s=24 * 3600,
        regions=services.settings.regions,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=skew_s),
        max_recovery_attempts=max_recovery_attempts,
    )


def card_request(cart_id: str) -> CheckoutRequest:
    card = Card(number=APPROVED, exp_month=12, exp_year=2040, cvc="123")
    return CheckoutRequest(
        cart_id=cart_id, payment=PaymentMethod(card=card), address=ShippingAddress(**ADDRESS)
    )


def payment_of(engine: Engine, payment_id: str) -> dict[str, Any]:
    """The payment row and what the sandbox gateway holds for it."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT p.status, p.captured_minor, p.refunded_minor, g.status AS held "
                    "FROM payments p LEFT JOIN sandbox_gateway_charges g "
                    "ON g.reference = p.gateway_reference WHERE p.payment_id = :id"
                ),
                {"id": payment_id},
            )
            .mappings()
            .one()
        )
    return dict(row)


def stored(engine: Engine, customer_id: str, key: str) -> tuple[int | None, dict[str, Any]]:
    """The response stored for an idempotency key."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT response_status, response_body FROM checkout_idempotency_keys "
                "WHERE customer_id = :c AND idempotency_key = :k"
            ),
            {"c": customer_id, "k": key},
        ).one()
    return row.response_status, row.response_body


def run(service: CheckoutService, shopper: dict[str, Any], cart_id: str, key: str) -> CheckoutReply:
    return service.checkout(Principal(shopper["customer_id"], "eu"), card_request(cart_id), key)


def test_an_order_cancelled_by_support_before_it_is_paid_is_refunded_and_answered(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})

    class SupportCancels(PaymentsAdapter):
        def collect(self, payment: Payment) -> int:
            captured = super().collect(payment)  # charged, then support cancels the order
            services["orders"].cancel(payment.order_id, "admin:support", "fraud_suspected")
            return captured

    key = str(uuid.uuid4())
    reply = run(
        saga(services, payments=SupportCancels(services["payments"])), shopper, cart_id, key
    )

    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    checkout = saga_of(engine, reply.checkout_id)
    assert (checkout["status"], checkout["payment_status"]) == ("failed", "refunded")
    payment = payment_of(engine, checkout["payment_id"])
    assert payment["captured_minor"] == payment["refunded_minor"] > 0
    order = order_of(engine, reply.checkout_id)
    assert order is not None and order["status"] == "cancelled"
    assert stock_of(engine, sku) == (5, 0)
    assert stored(engine, shopper["customer_id"], key) == (409, body)
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"]).json()
    assert [line["sku"] for line in cart["lines"]] == [sku]  # nothing was bought


def test_an_order_cancelled_before_the_capture_is_never_charged(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 2})

    class SupportCancels(PaymentsAdapter):
        def hold(self, payment: Payment) -> None:
            super().hold(payment)  # authorized, then support cancels before the capture
            services["orders"].cancel(payment.order_id, "admin:support", "fraud_suspected")

    reply = run(
        saga(services, payments=SupportCancels(services["payments"])),
        shopper,
        cart_id,
        str(uuid.uuid4()),
    )
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    checkout = saga_of(engine, reply.checkout_id)
    payment = payment_of(engine, checkout["payment_id"])
    assert (payment["status"], payment["captured_minor"], payment["held"]) == (
        "voided",
        0,
        "voided",
    )
    assert stock_of(engine, sku) == (5, 0)  # released with the cancel


def test_recovery_during_a_slow_authorization_leaves_no_hold_on_the_card(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})
    late = saga(services, skew_s=LEASE_S * 4)  # a recovery pass once the lease has run out
    recovered: list[int] = []

    class SlowGateway(PaymentsAdapter):
        def hold(self, payment: Payment) -> None:
            recovered.append(late.recover())  # the call outlives the lease
            super().hold(payment)

    key = str(uuid.uuid4())
    reply = run(saga(services, payments=SlowGateway(services["payments"])), shopper, cart_id, key)

    assert recovered and recovered[0] >= 1
    checkout = saga_of(engine, reply.checkout_id)
    assert checkout["status"] == "failed"
    # The authorization landed after recovery rolled back: its driver voided it.
    payment = payment_of(engine, checkout["payment_id"])
    assert (payment["status"], payment["held"]) == ("voided", "voided")
    order = order_of(engine, reply.checkout_id)
    assert order is not None and order["status"] == "cancelled"
    assert stock_of(engine, sku) == (5, 0)
    # The live request answers with the settled outcome, the same the key replays.
    assert (reply.response.status, reply.response.body["code"]) == (409, "checkout_interrupted")
    assert stored(engine, shopper["customer_id"], key) == (409, reply.response.body)


def test_a_reservation_swept_while_paying_is_voided_never_charged_and_refunded(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})

    class SlowGateway(PaymentsAdapter):
        def hold(self, payment: Payment) -> None:
            super().hold(payment)
            # The authorization took longer than the hold's TTL: the sweeper frees the units.
            checkout_id = payment.idempotency_key.removesuffix(":authorize")
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "UPDATE reservations SET expires_at = now() - interval '1 second' "
                        "WHERE checkout_id = :id"
                    ),
                    {"id": checkout_id},
                )
            assert services["inventory"].release_expired() >= 1

    reply = run(
        saga(services, payments=SlowGateway(services["payments"])),
        shopper,
        cart_id,
        str(uuid.uuid4()),
    )
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "reservation_released",
        "reserve",
    )
    checkout = saga_of(engine, reply.checkout_id)
    payment = payment_of(engine, checkout["payment_id"])
    assert (payment["status"], payment["captured_minor"], payment["refunded_minor"]) == (
        "voided",
        0,
        0,
    )
    assert stock_of(engine, sku) == (5, 0)


def test_what_the_shopper_adds_during_the_checkout_stays_in_the_cart(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    bought, later = stock_sku(client, seller, 5), stock_sku(client, seller, 5)
    shopper = register(client)
    principal = Principal(shopper["customer_id"], "eu")
    cart_id = filled_cart(client, shopper, {bought: 1})

    class ShopperAddsMore(PaymentsAdapter):
        def collect(self, payment: Payment) -> int:
            services["carts"].add_item(cart_id, principal, bought, 1)
            services["carts"].add_item(cart_id, principal, later, 2)
            return super().collect(payment)

    reply = run(
        saga(services, payments=ShopperAddsMore(services["payments"])),
        shopper,
        cart_id,
        str(uuid.uuid4()),
    )
    assert reply.response.status == 201, reply.response.body
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"]).json()
    assert [(line["sku"], line["quantity"]) for line in cart["lines"]] == [(bought, 1), (later, 2)]


def test_another_customers_vault_token_is_422_and_holds_no_stock(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    victim = register(client)
    paid = post_checkout(client, victim, checkout_body(filled_cart(client, victim, {sku: 1})))
    assert paid.status_code == 201, paid.text
    token = saga_of(engine, paid.json()["checkout_id"])["instrument_token"]
    thief = register(client)
    body = checkout_body(filled_cart(client, thief, {sku: 1}))
    for stolen in (token, "tok_" + uuid.uuid4().hex):
        body["payment_method"] = {"type": "card", "token": stolen}
        problem = assert_problem(post_checkout(client, thief, body), 422, "unknown_instrument")
        assert problem["step"] == "validate"
        assert reservations_of(engine, problem["checkout_id"]) == []
    assert stock_of(engine, sku) == (4, 0)
    own = checkout_body(filled_cart(client, victim, {sku: 1}))
    own["payment_method"] = {"type": "card", "token": token}
    again = post_checkout(client, victim, own)
    assert again.status_code == 201, again.text


def test_a_saga_that_can_never_finish_is_given_up_refunded_and_answered(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})
    failing: dict[str, bool] = {"mark_paid": True}

    class Broken(PaymentsAdapter):
        def collect(self, payment: Payment) -> int:
            super().collect(payment)
            raise RuntimeError("a bug right after the capture")

    class OrdersDown(OrdersAdapter):
        def mark_paid(self, order_id: str, payment_id: str, amount: int, method: str) -> None:
            if failing["mark_paid"]:
                raise RuntimeError("orders database unreachable")
            super().mark_paid(order_id, payment_id, amount, method)

    orders = OrdersDown(services["orders"])
    key = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        run(saga(services, payments=Broken(services["payments"])), shopper, cart_id, key)
    (checkout_id,) = checkout_ids_of(engine, shopper["customer_id"])
    passes: list[Callable[[], int]] = [
        saga(
            services, orders=orders, skew_s=(n + 1) * (LEASE_S + 1), max_recovery_attempts=2
        ).recover
        for n in range(3)
    ]
    for recover in passes[:2]:  # two takeovers, two failures
        recover()
        assert saga_of(engine, checkout_id)["status"] == "pending"
    passes[2]()  # the third gives up
    checkout = saga_of(engine, checkout_id)
    assert (checkout["status"], checkout["recovery_attempts"]) == ("failed", 3)
    assert checkout["failure"]["code"] == "checkout_not_completed"
    assert checkout["failure"]["extra"] == {"cause": "too_many_attempts"}
    payment = payment_of(engine, checkout["payment_id"])
    assert payment["captured_minor"] == payment["refunded_minor"] > 0
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "cancelled"
    assert stock_of(engine, sku) == (5, 0)
    status, body = stored(engine, shopper["customer_id"], key)
    assert (status, body["code"]) == (409, "checkout_not_completed")
    replay = run(saga(services), shopper, cart_id, key)
    assert replay.replayed and replay.response.body == body
