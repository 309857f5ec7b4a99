"""The wallet over HTTP on the real stack: top-ups by card (idempotent), paying a checkout from
the wallet, a split wallet + card, an EMI plan, refunds and credits back into the wallet, and
bad input refused with nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    DECLINED,
    filled_cart,
    order_of,
    post_checkout,
    stock_of,
    stock_sku,
)
from tests.integration.wallet.helpers import (
    CARD,
    balance_of,
    entries_of,
    events_of,
    ledger_kinds,
    paying,
    payment_row,
    top_up,
)
from transactional.ledger.model import processor_clearing
from transactional.payments.model import Card, GatewayTimeout
from transactional.payments.wallet_repository import SqlWalletUnitOfWork
from transactional.payments.wallet_service import WalletService


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def test_a_top_up_charges_the_card_once_and_credits_the_wallet(client: Any, engine: Engine) -> None:
    shopper = register(client)
    key = str(uuid.uuid4())
    first = top_up(client, shopper, 5000, key=key)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["amount_minor"], body["balance_minor"]) == (
        "succeeded",
        5000,
        5000,
    )
    again = top_up(client, shopper, 5000, key=key)  # a retry: the same top-up, charged once
    assert again.status_code == 201 and again.json()["topup_id"] == body["topup_id"]
    assert balance_of(engine, shopper["customer_id"]) == 5000
    with engine.connect() as connection:
        charges = connection.execute(
            text(
                "SELECT count(*) FROM sandbox_gateway_charges WHERE reference = :r "
                "AND status = 'captured'"
            ),
            {"r": body["gateway_reference"]},
        ).scalar_one()
    assert charges == 1
    assert entries_of(engine, shopper["customer_id"]) == [("topup", 5000, 5000)]
    assert events_of(engine, shopper["customer_id"]) == ["wallet.topped_up"]
    assert ledger_kinds(engine, body["topup_id"]) == ["wallet_topup"]
    shown = client.get("/v1/wallet", headers=shopper["headers"])
    assert shown.status_code == 200, shown.text
    assert shown.json()["balance_minor"] == 5000 and shown.json()["currency"] == "EUR"
    assert [e["kind"] for e in shown.json()["entries"]] == ["topup"]
    # The same key with another body is refused, nothing charged.
    reused = top_up(client, shopper, 6000, key=key)
    assert_problem(reused, 422, "idempotency_key_reused")
    assert balance_of(engine, shopper["customer_id"]) == 5000


def test_bad_top_ups_are_refused_and_credit_nothing(client: Any, engine: Engine) -> None:
    shopper = register(client)
    declined = top_up(client, shopper, 2000, card={**CARD, "number": DECLINED})
    assert_problem(declined, 402, "topup_declined")
    no_key = client.post(
        "/v1/wallet/top-ups",
        json={"amount_minor": 100, "currency": "EUR", "card": CARD},
        headers=shopper["headers"],
    )
    assert_problem(no_key, 400)
    assert_problem(top_up(client, shopper, 0), 400)  # below the schema's minimum
    assert_problem(top_up(client, shopper, 100, currency="XYZ"), 422, "unsupported_currency")
    foreign = client.post(
        "/v1/wallet/top-ups",
        json={"amount_minor": 100, "currency": "EUR", "token": "tok_someone_else"},
        headers={**shopper["headers"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert_problem(foreign, 422, "unknown_instrument")
    assert balance_of(engine, shopper["customer_id"]) == 0
    assert entries_of(engine, shopper["customer_id"]) == []
    assert client.get("/v1/wallet").status_code == 401


def test_a_checkout_paid_from_the_wallet_debits_it_and_a_refund_credits_it_back(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5, price_minor=1500)
    shopper = register(client)
    assert top_up(client, shopper, 10_000).status_code == 201
    response = post_checkout(
        client, shopper, paying(filled_cart(client, shopper, {sku: 1}), {"type": "wallet"})
    )
    assert response.status_code == 201, response.text
    checkout_id = response.json()["checkout_id"]
    total = response.json()["totals"]["grand_total_minor"]
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "paid" and order["paid_minor"] == total
    payment = payment_row(engine, checkout_id)
    assert (payment["method"], payment["gateway"], payment["status"]) == (
        "wallet",
        "wallet",
        "captured",
    )
    assert payment["captured_minor"] == total
    assert payment["gateway_reference"].startswith("wsp_")
    assert balance_of(engine, shopper["customer_id"]) == 10_000 - total
    assert [e[0] for e in entries_of(engine, shopper["customer_id"])] == ["topup", "debit"]
    assert events_of(engine, shopper["customer_id"]) == ["wallet.topped_up", "wallet.debited"]
    # A refund through the payment service goes back into the wallet.
    services["payments"].refund(payment["payment_id"], 500, reason="goodwill")
    assert balance_of(engine, shopper["customer_id"]) == 10_000 - total + 500
    assert entries_of(engine, shopper["customer_id"])[-1][:2] == ("refund", 500)


def test_a_wallet_that_cannot_cover_the_order_declines_it_and_keeps_its_money(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 3, price_minor=4000)
    shopper = register(client)
    assert top_up(client, shopper, 1000).status_code == 201
    response = post_checkout(
        client, shopper, paying(filled_cart(client, shopper, {sku: 1}), {"type": "wallet"})
    )
    problem = assert_problem(response, 402)
    assert problem["decline_code"] == "insufficient_funds"
    assert balance_of(engine, shopper["customer_id"]) == 1000
    assert stock_of(engine, sku) == (3, 0)
    order = order_of(engine, problem["checkout_id"])
    assert order is not None and order["status"] == "cancelled"


def test_a_split_payment_takes_the_wallet_part_and_charges_the_card_the_rest(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 3, price_minor=3000)
    shopper = register(client)
    assert top_up(client, shopper, 1200).status_code == 201
    method = {"type": "card", "card": CARD, "wallet_amount_minor": 1000}
    response = post_checkout(
        client, shopper, paying(filled_cart(client, shopper, {sku: 1}), method)
    )
    assert response.status_code == 201, response.text
    total = response.json()["totals"]["grand_total_minor"]
    payment = payment_row(engine, response.json()["checkout_id"])
    assert (payment["method"], payment["gateway"], payment["status"]) == (
        "wallet",
        "split",
        "captured",
    )
    _, wallet_ref, card_ref = payment["gateway_reference"].split(":", 2)
    assert balance_of(engine, shopper["customer_id"]) == 200
    with engine.connect() as connection:
        card = connection.execute(
            text("SELECT status, captured_minor FROM sandbox_gateway_charges WHERE reference = :r"),
            {"r": card_ref},
        ).one()
        spend = connection.execute(
            text("SELECT status, captured_minor FROM wallet_spends WHERE reference = :r"),
            {"r": wallet_ref},
        ).one()
    assert tuple(card) == ("captured", total - 1000) and tuple(spend) == ("captured", 1000)
    # A refund gives the wallet part back first, then the card's.
    services["payments"].refund(payment["payment_id"], 1100, reason="goodwill")
    assert balance_of(engine, shopper["customer_id"]) == 1200
    with engine.connect() as connection:
        refunded = connection.execute(
            text("SELECT refunded_minor FROM sandbox_gateway_charges WHERE reference = :r"),
            {"r": card_ref},
        ).scalar_one()
    assert refunded == 100


def test_a_split_whose_card_declines_releases_the_wallet_part(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 3, price_minor=3000)
    shopper = register(client)
    assert top_up(client, shopper, 1000).status_code == 201
    method = {"type": "card", "card": {**CARD, "number": DECLINED}, "wallet_amount_minor": 800}
    response = post_checkout(
        client, shopper, paying(filled_cart(client, shopper, {sku: 1}), method)
    )
    assert assert_problem(response, 402)["decline_code"] == "card_declined"
    assert balance_of(engine, shopper["customer_id"]) == 1000
    assert [e[0] for e in entries_of(engine, shopper["customer_id"])] == [
        "topup",
        "debit",
        "release",
    ]
    assert stock_of(engine, sku) == (3, 0)


def test_emi_plans_are_shown_and_the_chosen_one_is_recorded_on_the_payment(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    plans = client.get("/v1/payments/emi-plans?amount_minor=100000&currency=EUR&bank=ing")
    assert plans.status_code == 200, plans.text
    shown = plans.json()
    assert shown["region"] == "eu" and [p["months"] for p in shown["plans"]] == [3, 6, 12]
    assert shown["plans"][0]["total_interest_minor"] == 0
    assert shown["plans"][2]["total_minor"] > 100_000
    unknown = client.get("/v1/payments/emi-plans?amount_minor=100&currency=EUR&bank=hdfc")
    assert_problem(unknown, 422, "unknown_emi_plan")
    assert_problem(client.get("/v1/payments/emi-plans?amount_minor=0&currency=EUR&bank=ing"), 400)

    sku = stock_sku(client, seller, 3, price_minor=5000)
    shopper = register(client)
    method = {"type": "emi", "card": CARD, "emi": {"months": 6, "bank": "ing"}}
    response = post_checkout(
        client, shopper, paying(filled_cart(client, shopper, {sku: 1}), method)
    )
    assert response.status_code == 201, response.text
    total = response.json()["totals"]["grand_total_minor"]
    payment = payment_row(engine, response.json()["checkout_id"])
    six = client.get(f"/v1/payments/emi-plans?amount_minor={total}&currency=EUR&bank=ing").json()[
        "plans"
    ][1]
    assert (payment["method"], payment["emi_months"], payment["emi_bank"]) == ("emi", 6, "ing")
    assert payment["emi_monthly_minor"] == six["monthly_instalment_minor"]
    assert payment["emi_interest_minor"] == six["total_interest_minor"]
    assert payment["captured_minor"] == total  # the merchant is paid in full; the bank lends
    # The order's payment shows its plan to its customer, and to nobody else.
    order = client.get(
        f"/v1/orders/{order_of(engine, response.json()['checkout_id'])['order_id']}",
        headers=shopper["headers"],
    ).json()
    assert order["payment_method"] == "emi"
    shown_payment = client.get(f"/v1/payments/{order['payment_id']}", headers=shopper["headers"])
    assert shown_payment.status_code == 200, shown_payment.text
    assert shown_payment.json()["emi"] == {
        "months": 6,
        "bank": "ing",
        "annual_rate_bp": payment["emi_rate_bp"],
        "monthly_instalment_minor": six["monthly_instalment_minor"],
        "total_interest_minor": six["total_interest_minor"],
    }
    stranger = register(client)
    assert_problem(
        client.get(f"/v1/payments/{order['payment_id']}", headers=stranger["headers"]),
        404,
        "payment_not_found",
    )
    # A bank without plans in the region is refused before anything is held.
    bad = {"type": "emi", "card": CARD, "emi": {"months": 3, "bank": "sbi"}}
    refused = post_checkout(client, shopper, paying(filled_cart(client, shopper, {sku: 1}), bad))
    assert_problem(refused, 422, "unknown_emi_plan")
    assert stock_of(engine, sku) == (2, 0)


def test_contradictory_payment_methods_are_refused(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 2)
    shopper = register(client)
    cart = filled_cart(client, shopper, {sku: 1})
    for method in (
        {"type": "wallet", "card": CARD},
        {"type": "emi", "card": CARD},
        {"type": "card", "emi": {"months": 3, "bank": "ing"}, "card": CARD},
        {"type": "wallet", "wallet_amount_minor": 100},
        {"type": "emi", "emi": {"months": 4, "bank": "ing"}, "card": CARD},
    ):
        response = post_checkout(client, shopper, paying(cart, method))
        assert response.status_code in (400, 422), (method, response.text)
    assert stock_of(engine, sku) == (2, 0)


def test_store_credit_is_credited_once_per_reference_with_its_booking(
    client: Any, engine: Engine, services: Services
) -> None:
    shopper = register(client)
    wallet = services["wallet"]
    reference = f"ret_{uuid.uuid4().hex}"
    funding = [(processor_clearing("sandbox"), 700)]
    first = wallet.credit(
        shopper["customer_id"], 700, "EUR", reference, reason="return", funding=funding
    )
    again = wallet.credit(
        shopper["customer_id"], 700, "EUR", reference, reason="return", funding=funding
    )
    assert first.entry_id == again.entry_id
    assert balance_of(engine, shopper["customer_id"]) == 700
    assert ledger_kinds(engine, f"credit:{reference}") == ["wallet_topup"]
    assert events_of(engine, shopper["customer_id"]) == ["wallet.credited"]
    with engine.connect() as connection, pytest.raises(Exception, match="append-only"):
        connection.execute(
            text("UPDATE wallet_entries SET amount_minor = 1 WHERE reference = :r"),
            {"r": reference},
        )


class LostCaptureAnswer:
    """The real router, except that a capture's answer is lost after it happened."""

    def __init__(self, router: Any) -> None:
        self._router = router

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    def capture(self, reference: str, amount_minor: int | None, key: str) -> Any:
        self._router.capture(reference, amount_minor, key)
        raise GatewayTimeout("capture", key)


def test_a_top_up_whose_capture_answer_was_lost_is_finished_once(
    client: Any, engine: Engine, services: Services
) -> None:
    shopper = register(client)
    customer_id = shopper["customer_id"]
    router = services["payment_router"]
    flaky = WalletService(
        lambda: SqlWalletUnitOfWork(services.engine, services.outbox),
        LostCaptureAnswer(router),
        card_key=b"k",
    )
    key = str(uuid.uuid4())
    card = Card(str(CARD["number"]), 12, 2040, "123", "Ada")
    with pytest.raises(GatewayTimeout):
        flaky.top_up(customer_id, 2500, "EUR", key, card=card)
    assert balance_of(engine, customer_id) == 0  # charged, not yet credited
    healthy = WalletService(
        lambda: SqlWalletUnitOfWork(services.engine, services.outbox), router, card_key=b"k"
    )
    assert healthy.resume_pending(older_than_s=0) >= 1
    assert balance_of(engine, customer_id) == 2500
    assert healthy.top_up(customer_id, 2500, "EUR", key, card=card).status == "succeeded"
    healthy.resume_pending(older_than_s=0)
    assert balance_of(engine, customer_id) == 2500  # credited once
    assert entries_of(engine, customer_id) == [("topup", 2500, 2500)]
