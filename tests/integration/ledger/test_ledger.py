"""The double-entry ledger on the real stack: what a checkout, a cancel and refunds book, the
append-only journal, idempotent bookings, `souk ledger check` and `souk ledger payouts`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from schemas.common import Address
from souk.cli import app as cli
from souk.services import Services
from souk.settings import get_settings
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    post_checkout,
    set_stock,
)
from tests.integration.purchase.test_orders_service import pay_order
from transactional.ledger.check import SqlLedgerSource, check
from transactional.ledger.commission import load_commission
from transactional.ledger.model import (
    CAPTURE,
    REFUND,
    LedgerTransaction,
    platform_revenue,
    processor_clearing,
    seller_payable,
    seller_payouts_cash,
)
from transactional.ledger.repository import SqlLedgerRepository
from transactional.orders.placement import NewLine, PlaceOrder

PHONES = "cat_electronics_phones"
FICTION = "cat_books_fiction"


@pytest.fixture(scope="module")
def sellers(app: Litestar, services: Services) -> Iterator[list[dict[str, Any]]]:
    """Two approved sellers: one sells phones, the other books."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        admin = admin_headers(services.tokens)
        yield [approved_seller(setup, admin), approved_seller(setup, admin)]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, endpoints: Endpoints) -> Iterator[None]:
    """`souk ledger …` in this process, on the test database."""
    monkeypatch.setenv("SOUK_DATABASE_URL", endpoints.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def stocked(client: Any, seller: dict[str, Any], category: str, price: int) -> str:
    sku = fresh_sku("LDG")
    list_product(client, seller, skus_prices={sku: price}, category_id=category, title=sku)
    set_stock(client, seller, sku, 20)
    return sku


def paid_checkout(client: Any, sellers: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A paid two-seller order (a phone and two books): its id and its shopper."""
    phone = stocked(client, sellers[0], PHONES, 19999)
    book = stocked(client, sellers[1], FICTION, 1250)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {phone: 1, book: 2})
    response = post_checkout(client, shopper, checkout_body(cart_id))
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id, shopper


def bookings(engine: Engine, order_id: str) -> list[LedgerTransaction]:
    with engine.connect() as connection:
        return SqlLedgerRepository(connection).for_order(order_id)


def order_rows(engine: Engine, order_id: str) -> tuple[Any, list[Any]]:
    with engine.connect() as connection:
        order = connection.execute(
            text("SELECT * FROM orders WHERE order_id = :id"), {"id": order_id}
        ).one()
        lines = connection.execute(
            text(
                "SELECT l.seller_id, l.quantity * l.unit_price_minor AS total, l.tax_minor, "
                "l.tax_included, p.category_id FROM order_lines l "
                "JOIN products p USING (product_id) WHERE l.order_id = :id"
            ),
            {"id": order_id},
        ).all()
    return order, list(lines)


def net_by_account(txs: list[LedgerTransaction]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for tx in txs:
        for posting in tx.postings:
            totals[posting.account] = totals.get(posting.account, 0) + posting.amount_minor
    return {account: total for account, total in totals.items() if total}


def assert_ledger_holds(engine: Engine) -> None:
    with engine.connect() as connection:
        assert check(SqlLedgerSource(connection)) == []


# -- what a checkout books --------------------------------------------------------------------


def test_a_checkout_books_one_balanced_capture_split_per_seller(
    client: Any, engine: Engine, sellers: list[dict[str, Any]]
) -> None:
    rates = load_commission()
    # The two categories earn different commissions, so the split shows which rate applied.
    assert rates.rate("x", PHONES) != rates.rate("x", FICTION)
    order_id, _shopper = paid_checkout(client, sellers)

    (capture,) = bookings(engine, order_id)
    order, lines = order_rows(engine, order_id)
    assert (capture.kind, capture.reference) == (CAPTURE, order.payment_id)
    assert capture.totals() == {"EUR": 0}
    assert capture.on(processor_clearing("sandbox")) == order.grand_total_minor > 0
    commission = 0
    for seller in sellers:
        (line,) = [row for row in lines if row.seller_id == seller["seller_id"]]
        net = int(line.total) - (int(line.tax_minor) if line.tax_included else 0)
        cut = int(
            (net * rates.rate(seller["seller_id"], line.category_id)).quantize(
                Decimal(1), rounding=ROUND_HALF_EVEN
            )
        )
        commission += cut
        assert capture.on(seller_payable(seller["seller_id"])) == -(net - cut)
    assert capture.on(platform_revenue()) == -commission
    assert_ledger_holds(engine)


def test_the_slow_paths_capture_books_the_same_split(
    client: Any, engine: Engine, services: Services, sellers: list[dict[str, Any]]
) -> None:
    """The saga's step-by-step path captures through PaymentService.capture: it books too."""
    phone = list_product(
        client, sellers[0], skus_prices={fresh_sku("LDG"): 30000}, category_id=PHONES
    )
    book = list_product(
        client, sellers[1], skus_prices={fresh_sku("LDG"): 900}, category_id=FICTION
    )
    lines = [
        NewLine(p["variants"][0]["sku"], p["product_id"], s["seller_id"], "x", 1, price, "wh_eu_1")
        for p, s, price in ((phone, sellers[0], 30000), (book, sellers[1], 900))
    ]
    order = services["orders"].place(
        PlaceOrder(
            checkout_id=f"chk_{secrets.token_hex(8)}",
            customer_id=f"cus_{secrets.token_hex(8)}",
            region="eu",
            currency="EUR",
            lines=lines,
            shipping_address=Address(country="DE", city="Berlin"),
        )
    )

    paid = pay_order(services, order)

    (capture,) = bookings(engine, order.order_id)
    rates = load_commission()
    assert capture.payment_id == paid.payment_id
    assert capture.on(processor_clearing("sandbox")) == 30900
    phone_cut = int((30000 * rates.rate("x", PHONES)).to_integral_value(ROUND_HALF_EVEN))
    book_cut = int((900 * rates.rate("x", FICTION)).to_integral_value(ROUND_HALF_EVEN))
    assert capture.on(seller_payable(sellers[0]["seller_id"])) == -(30000 - phone_cut)
    assert capture.on(seller_payable(sellers[1]["seller_id"])) == -(900 - book_cut)
    assert capture.on(platform_revenue()) == -(phone_cut + book_cut)
    assert_ledger_holds(engine)


def test_cancelling_the_paid_order_books_a_refund_that_reverses_the_capture(
    client: Any, engine: Engine, sellers: list[dict[str, Any]]
) -> None:
    order_id, shopper = paid_checkout(client, sellers)
    (capture,) = bookings(engine, order_id)

    cancelled = client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=shopper["headers"])

    assert cancelled.status_code == 200, cancelled.text
    capture_again, refund = bookings(engine, order_id)
    assert capture_again == capture
    assert (refund.kind, refund.payment_id) == (REFUND, capture.payment_id)
    assert refund.totals() == {"EUR": 0}
    # Every account the capture moved is back where it was.
    assert net_by_account([capture, refund]) == {}
    assert_ledger_holds(engine)


def test_partial_refunds_book_proportional_shares_and_end_exactly_reversed(
    client: Any, engine: Engine, services: Services, sellers: list[dict[str, Any]]
) -> None:
    order_id, _shopper = paid_checkout(client, sellers)
    (capture,) = bookings(engine, order_id)
    payment_id = capture.payment_id
    assert payment_id is not None
    total = capture.amount()

    services["payments"].refund(payment_id, 1001, reason="goodwill")
    services["payments"].refund(payment_id, 333, reason="goodwill")
    _capture, first, second = bookings(engine, order_id)

    assert [first.amount(), second.amount()] == [1001, 333]
    for refund in (first, second):
        assert refund.totals() == {"EUR": 0}
        # Each seller gives back a share of its own take, never more (no sign flips).
        for seller in sellers:
            account = seller_payable(seller["seller_id"])
            assert 0 <= refund.on(account) <= -capture.on(account)
    services["payments"].refund(payment_id, reason="goodwill")  # the rest
    assert net_by_account(bookings(engine, order_id)) == {}
    assert sum(tx.amount() for tx in bookings(engine, order_id)[1:]) == total
    assert_ledger_holds(engine)


# -- the journal's guarantees -----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_minor = amount_minor + 1",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_transactions SET reference = reference || 'x'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_postings",
        "TRUNCATE ledger_transactions CASCADE",
    ],
)
def test_the_journal_is_append_only(engine: Engine, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))


def test_booking_the_same_capture_again_changes_nothing(
    client: Any, engine: Engine, services: Services, sellers: list[dict[str, Any]]
) -> None:
    order_id, _shopper = paid_checkout(client, sellers)
    (capture,) = bookings(engine, order_id)
    with engine.connect() as connection:
        before = SqlLedgerRepository(connection).balances()

    with engine.begin() as connection:
        assert SqlLedgerRepository(connection).append(capture) is False
    assert capture.payment_id is not None
    services["payments"].capture(capture.payment_id)  # a repeated capture: a no-op

    assert bookings(engine, order_id) == [capture]
    with engine.connect() as connection:
        assert SqlLedgerRepository(connection).balances() == before


# -- the command line -------------------------------------------------------------------------


def test_ledger_check_passes_and_fails_on_an_unbalanced_row(engine: Engine, cli_env: None) -> None:
    runner = CliRunner()
    passed = runner.invoke(cli, ["ledger", "check"])
    assert passed.exit_code == 0, passed.output
    assert "passed" in passed.output

    bad = f"ltx_bad_{secrets.token_hex(4)}"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_transactions (transaction_id, kind, reference, occurred_at) "
                "VALUES (:id, 'adjustment', :id, now())"
            ),
            {"id": bad},
        )
        connection.execute(
            text("INSERT INTO ledger_postings VALUES (:id, 1, 'suspense', 'EUR', 7)"), {"id": bad}
        )
    try:
        failed = runner.invoke(cli, ["ledger", "check"])
        assert failed.exit_code == 1, failed.output
        assert bad in failed.output
        assert "unbalanced: transaction does not sum to zero" in failed.output
        # The stored balance of `suspense` did not move: that is a violation too.
        assert "balance: stored balance is not the sum of the postings" in failed.output
    finally:
        with engine.begin() as connection:
            # A superuser's way around the append-only triggers, to clean up the test row.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(
                text("DELETE FROM ledger_postings WHERE transaction_id = :id"), {"id": bad}
            )
            connection.execute(
                text("DELETE FROM ledger_transactions WHERE transaction_id = :id"), {"id": bad}
            )
    again = runner.invoke(cli, ["ledger", "check"])
    assert again.exit_code == 0, again.output


def test_payouts_list_and_book_what_each_seller_is_owed(
    client: Any, engine: Engine, sellers: list[dict[str, Any]], cli_env: None
) -> None:
    paid_checkout(client, sellers)
    with engine.connect() as connection:
        journal = SqlLedgerRepository(connection)
        owed = {
            s["seller_id"]: -journal.balance(seller_payable(s["seller_id"]), "EUR") for s in sellers
        }
        cash_before = journal.balance(seller_payouts_cash(), "EUR")
    assert all(amount > 0 for amount in owed.values())
    runner = CliRunner()

    listed = runner.invoke(cli, ["ledger", "payouts"])
    assert listed.exit_code == 0, listed.output
    for seller_id, amount in owed.items():
        assert seller_id in listed.output and str(amount) in listed.output

    batch = f"batch_{secrets.token_hex(4)}"
    booked = runner.invoke(cli, ["ledger", "payouts", "--book", "--batch", batch])
    assert booked.exit_code == 0, booked.output
    with engine.connect() as connection:
        journal = SqlLedgerRepository(connection)
        for seller_id in owed:
            assert journal.balance(seller_payable(seller_id), "EUR") == 0
        paid_out = cash_before - journal.balance(seller_payouts_cash(), "EUR")
    assert paid_out >= sum(owed.values())  # other sellers of this database were paid too

    rerun = runner.invoke(cli, ["ledger", "payouts", "--book", "--batch", batch])
    assert rerun.exit_code == 0, rerun.output
    assert all(seller_id not in rerun.output for seller_id in owed)  # nothing owed any more
    assert_ledger_holds(engine)
