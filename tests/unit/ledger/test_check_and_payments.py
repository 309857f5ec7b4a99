"""The invariant checker on hand-built sums, and the bookkeeping of payments on fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from tests.unit.ledger.fakes import FakeJournal, FakePaymentLedger
from transactional.ledger.bookings import Sale, SaleLine
from transactional.ledger.check import LedgerSums, Violation, check, violations
from transactional.ledger.commission import CommissionRates
from transactional.ledger.model import (
    platform_revenue,
    processor_clearing,
    seller_payable,
    suspense,
    wallet_liability,
)
from transactional.ledger.payouts import PayoutDue, payouts_due
from transactional.payments.model import Payment, Refund

AT = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def test_sums_that_agree_break_nothing() -> None:
    sums = LedgerSums(
        stored={("a", "EUR"): 5, ("b", "EUR"): -5},
        posted={("a", "EUR"): 5, ("b", "EUR"): -5},
        held={("ord_1", "EUR"): 700},
        paid={("ord_1", "EUR"): 700, ("ord_2", "EUR"): 0},  # nothing left of a refunded one
    )
    assert violations(sums) == []


def test_each_broken_invariant_is_reported() -> None:
    sums = LedgerSums(
        unbalanced={("ltx_1", "EUR"): 7},
        empty=("ltx_2",),
        stored={("a", "EUR"): 5, ("c", "INR"): 1},
        posted={("a", "EUR"): 12},
        held={("ord_1", "EUR"): 700, ("ord_3", "EUR"): 50},
        paid={("ord_1", "EUR"): 650},
    )
    assert violations(sums) == [
        Violation("unbalanced", "ltx_1", "EUR", 0, 7),
        Violation("empty", "ltx_2", "-", 1, 0),
        Violation("balance", "a", "EUR", 12, 5),
        Violation("balance", "c", "INR", 0, 1),
        Violation("order", "ord_1", "EUR", 650, 700),
        Violation("order", "ord_3", "EUR", 0, 50),
    ]
    assert "captured minus refunded" in violations(sums)[-1].detail


class _Source:
    def __init__(self, sums: LedgerSums) -> None:
        self._sums = sums

    def sums(self) -> LedgerSums:
        return self._sums


def test_check_reads_its_source() -> None:
    assert check(_Source(LedgerSums(unbalanced={("t", "EUR"): 1}))) == [
        Violation("unbalanced", "t", "EUR", 0, 1)
    ]


def test_payouts_due_skip_small_balances_and_sort() -> None:
    payables = {("sel_b", "EUR"): 500, ("sel_a", "INR"): 3, ("sel_a", "EUR"): 10}
    assert payouts_due(payables, minimum_minor=5) == [
        PayoutDue("sel_a", "EUR", 10),
        PayoutDue("sel_b", "EUR", 500),
    ]


# -- the payment bookkeeper -------------------------------------------------------------------

RATES = CommissionRates(default=Decimal("0.1"))
SALE = Sale("ord_eu_1", "eu", "EUR", "cus_1", (SaleLine("sel_a", 600), SaleLine("sel_b", 400)), 0)


def payment(method: str = "card", **changes: object) -> Payment:
    base = Payment(
        payment_id="pay_1",
        order_id="ord_eu_1",
        customer_id="cus_1",
        region="eu",
        amount_minor=1_000,
        currency="EUR",
        instrument_token="tok",
        idempotency_key="k",
        created_at=AT,
        updated_at=AT,
        method=method,  # type: ignore[arg-type]
        status="captured",
        captured_minor=1_000,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_card_capture_is_split_and_booked_once() -> None:
    ledger = FakePaymentLedger(sales={"ord_eu_1": SALE}, rates=RATES)
    assert ledger.book_capture(payment(), 1_000) is True
    assert ledger.book_capture(payment(), 1_000) is False  # a retry books nothing
    journal = ledger.fake_journal
    assert journal.balance(processor_clearing("sandbox"), "EUR") == 1_000
    assert journal.balance(seller_payable("sel_a"), "EUR") == -540
    assert journal.balance(platform_revenue(), "EUR") == -100
    assert journal.seller_payables() == {("sel_a", "EUR"): 540, ("sel_b", "EUR"): 360}


def test_a_wallet_payment_is_funded_by_the_wallet() -> None:
    ledger = FakePaymentLedger(sales={"ord_eu_1": SALE}, rates=RATES)
    ledger.book_capture(payment("wallet"), 1_000)
    assert ledger.fake_journal.balance(wallet_liability("cus_1"), "EUR") == 1_000


def test_a_split_payment_is_funded_by_the_wallet_and_the_card_and_refunded_wallet_first() -> None:
    ledger = FakePaymentLedger(FakeJournal(), {"ord_eu_1": SALE}, RATES)
    split = payment("wallet", gateway="split", instrument_token="split:300:tok_card")
    ledger.book_capture(split, 1_000)
    journal = ledger.fake_journal
    assert journal.balance(wallet_liability("cus_1"), "EUR") == 300
    assert journal.balance(processor_clearing("split"), "EUR") == 700
    assert journal.balance(seller_payable("sel_a"), "EUR") == -540
    # 200 back: all to the wallet; then 400: the wallet's last 100, 300 to the card
    ledger.book_refund(
        replace(split, refunded_minor=200), Refund("re_1", "pay_1", 200, "EUR", "return", AT)
    )
    assert journal.balance(wallet_liability("cus_1"), "EUR") == 100
    assert journal.balance(processor_clearing("split"), "EUR") == 700
    ledger.book_refund(
        replace(split, refunded_minor=600), Refund("re_2", "pay_1", 400, "EUR", "return", AT)
    )
    assert journal.balance(wallet_liability("cus_1"), "EUR") == 0
    assert journal.balance(processor_clearing("split"), "EUR") == 400


def test_a_capture_of_an_unknown_order_goes_to_suspense() -> None:
    ledger = FakePaymentLedger(rates=RATES)
    ledger.book_capture(payment(), 1_000)
    assert ledger.fake_journal.balance(suspense(), "EUR") == -1_000


def test_refunds_reverse_the_booked_capture_in_parts() -> None:
    ledger = FakePaymentLedger(FakeJournal(), {"ord_eu_1": SALE}, RATES)
    ledger.book_capture(payment(), 1_000)
    first = Refund("re_1", "pay_1", 250, "EUR", "return", AT)
    second = Refund("re_2", "pay_1", 750, "EUR", "return", AT)
    assert ledger.book_refund(payment(refunded_minor=250), first) is True
    assert ledger.book_refund(payment(refunded_minor=250), first) is False
    assert ledger.book_refund(payment(refunded_minor=1_000), second) is True
    assert {v for v in ledger.fake_journal.stored_balances.values()} == {0}


def test_a_refund_of_an_unbooked_capture_still_balances() -> None:
    ledger = FakePaymentLedger(rates=RATES)
    ledger.book_refund(
        payment(refunded_minor=100), Refund("re_1", "pay_1", 100, "EUR", "return", AT)
    )
    journal = ledger.fake_journal
    assert journal.balance(processor_clearing("sandbox"), "EUR") == -100
    assert journal.balance(suspense(), "EUR") == 100


def test_the_slow_paths_sale_carries_each_lines_own_tax() -> None:
    from types import SimpleNamespace

    from transactional.ledger.payments import sale_of_rows

    def row(seller: str, total: int, tax: int, included: bool) -> SimpleNamespace:
        return SimpleNamespace(
            currency="USD",
            customer_id="cus_1",
            discount_minor=0,
            shipping_minor=0,
            order_tax_minor=0 if included else 120,
            seller_id=seller,
            total_minor=total,
            line_tax_minor=tax,
            tax_included=included,
            category_id=None,
        )

    # tax on top (us): each line's own tax, the sale's total is what the customer paid
    sale = sale_of_rows(
        "ord_us_1", "us", [row("sel_a", 1_000, 80, False), row("sel_b", 500, 40, False)]
    )
    assert sale is not None
    assert [(line.net_minor, line.tax_minor) for line in sale.lines] == [(1_000, 80), (500, 40)]
    assert sale.total_minor == 1_620
    # tax inside the price (eu): taken out of the line's total
    sale = sale_of_rows("ord_eu_1", "eu", [row("sel_a", 1_190, 190, True)])
    assert sale is not None
    assert [(line.net_minor, line.tax_minor) for line in sale.lines] == [(1_000, 190)]
