"""The pure side of the ledger: balanced transactions, the capture split, refunds, wallets,
payouts, reversals and commission rates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from transactional.ledger import bookings
from transactional.ledger.bookings import Sale, SaleLine, SoldItem
from transactional.ledger.commission import (
    CommissionRates,
    InvalidCommissionFile,
    load_commission,
)
from transactional.ledger.model import (
    LedgerTransaction,
    Posting,
    UnbalancedTransaction,
    allocate,
    platform_revenue,
    processor_clearing,
    seller_payable,
    seller_payouts_cash,
    shipping_revenue,
    tax_payable,
    transaction_id_for,
    wallet_liability,
)

AT = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
RATES = CommissionRates(
    default=Decimal("0.10"),
    by_category={"cat_books": Decimal("0.15"), "cat_books_rare": Decimal("0.05")},
    by_seller={"sel_vip": Decimal("0.02")},
)


def tx(*postings: Posting, kind: str = "adjustment", reference: str = "r1") -> LedgerTransaction:
    return LedgerTransaction(transaction_id_for(kind, reference), kind, reference, postings, AT)


def a_capture(funding: list[tuple[str, int]] | None = None) -> LedgerTransaction:
    """Two sellers: a book (15%) of 10 000 net + 700 tax, a gadget (10%) of 5 001 net."""
    return bookings.capture(
        reference="pay_1",
        order_id="ord_eu_1",
        payment_id="pay_1",
        currency="EUR",
        region="eu",
        lines=[
            SaleLine("sel_a", 10_000, tax_minor=700, category="cat_books_fiction"),
            SaleLine("sel_b", 5_001, category="cat_gadgets"),
        ],
        funding=funding or [(processor_clearing("sandbox"), 16_201)],
        rates=RATES,
        occurred_at=AT,
        shipping_minor=500,
    )


# -- the model --------------------------------------------------------------------------------


def test_a_transaction_must_sum_to_zero_in_each_currency() -> None:
    ok = tx(
        Posting("a", 5, "EUR"),
        Posting("b", -5, "EUR"),
        Posting("c", 3, "INR"),
        Posting("d", -3, "INR"),
    )
    assert ok.totals() == {"EUR": 0, "INR": 0}
    with pytest.raises(UnbalancedTransaction, match=r"EUR \+1") as raised:
        tx(Posting("a", 6, "EUR"), Posting("b", -5, "EUR"))
    assert raised.value.code == "unbalanced_transaction"
    # Balanced in total but not per currency: still refused.
    with pytest.raises(UnbalancedTransaction, match="INR"):
        tx(Posting("a", 5, "EUR"), Posting("b", -5, "INR"))


@pytest.mark.parametrize(
    ("postings", "reason"),
    [
        ((), "empty"),
        ((Posting("a", 0, "EUR"),), "amount"),
        ((Posting("a", True, "EUR"), Posting("b", -1, "EUR")), "amount"),
        ((Posting("a", 1.5, "EUR"), Posting("b", -1.5, "EUR")), "amount"),  # type: ignore[arg-type]
        ((Posting("a", 1, "eur"), Posting("b", -1, "eur")), "currency"),
        ((Posting("Bad Account", 1, "EUR"), Posting("b", -1, "EUR")), "account"),
    ],
)
def test_malformed_transactions_are_refused(postings: tuple[Posting, ...], reason: str) -> None:
    with pytest.raises(UnbalancedTransaction) as raised:
        tx(*postings)
    assert raised.value.extra["reason"] == reason


def test_ids_derive_from_kind_and_reference() -> None:
    assert transaction_id_for("capture", "pay_1") == transaction_id_for("capture", "pay_1")
    assert transaction_id_for("capture", "pay_1") != transaction_id_for("refund", "pay_1")


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (10, [0, 5, 5], [0, 5, 5]),
        (0, [0, 0], [0, 0]),
        (7, [3, 1], [5, 2]),
    ],
)
def test_allocate_splits_exactly(total: int, weights: list[int], parts: list[int]) -> None:
    assert allocate(total, weights) == parts
    assert sum(parts) == total


# -- the capture split ------------------------------------------------------------------------


def test_a_capture_credits_each_seller_its_share_and_the_platform_its_commission() -> None:
    capture = a_capture()
    assert capture.totals() == {"EUR": 0}
    assert capture.on(processor_clearing("sandbox")) == 16_201
    # 15% of 10 000 (the books category covers its subcategories); 10% of 5 001 = 500.1 -> 500
    assert capture.on(seller_payable("sel_a")) == -8_500
    assert capture.on(seller_payable("sel_b")) == -4_501
    assert capture.on(platform_revenue()) == -(1_500 + 500)
    assert capture.on(tax_payable("eu")) == -700
    assert capture.on(shipping_revenue()) == -500
    assert (capture.kind, capture.reference, capture.order_id) == ("capture", "pay_1", "ord_eu_1")


def test_a_split_payment_debits_the_wallet_and_the_card() -> None:
    capture = a_capture(
        [*bookings.wallet_funding("cus_1", 6_201), *bookings.card_funding("sandbox", 10_000)]
    )
    assert capture.on(wallet_liability("cus_1")) == 6_201
    assert capture.on(processor_clearing("sandbox")) == 10_000


def test_funding_that_is_not_the_sale_total_is_unbalanced() -> None:
    with pytest.raises(UnbalancedTransaction):
        a_capture([(processor_clearing("sandbox"), 16_200)])
    with pytest.raises(UnbalancedTransaction, match="positive"):
        a_capture([(processor_clearing("sandbox"), 16_202), (wallet_liability("c"), -1)])


def test_commission_rates_prefer_the_seller_then_the_longest_category() -> None:
    assert RATES.rate("sel_vip", "cat_books") == Decimal("0.02")
    assert RATES.rate("sel_x", "cat_books_rare_maps") == Decimal("0.05")
    assert RATES.rate("sel_x", "cat_books") == Decimal("0.15")
    assert RATES.rate("sel_x", "cat_booksellers") == Decimal("0.10")  # not a subcategory
    assert RATES.rate("sel_x", None) == Decimal("0.10")
    assert RATES.commission(25, "sel_x", None) == 2  # 2.5 rounds half to even
    assert RATES.commission(35, "sel_x", None) == 4


def test_the_commission_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "c.toml"
    good.write_text('default = "0.2"\n[seller]\nsel_1 = 0.01\n[category]\ncat_x = "0.3"\n')
    rates = load_commission(good)
    assert (rates.rate("sel_1", "cat_x"), rates.rate("s", "cat_x"), rates.rate("s", None)) == (
        Decimal("0.01"),
        Decimal("0.3"),
        Decimal("0.2"),
    )
    assert load_commission().default >= 0  # the packaged file parses
    bad = tmp_path / "bad.toml"
    for text, message in [
        ('default = "1.5"', "between 0 and 1"),
        ('default = "x"', "not a number"),
        ("[sellers]", "unknown keys"),
        ("default = ", "not valid TOML"),
    ]:
        bad.write_text(text)
        with pytest.raises(InvalidCommissionFile, match=message):
            load_commission(bad)
    with pytest.raises(InvalidCommissionFile, match="does not exist"):
        load_commission(tmp_path / "missing.toml")


def test_sale_lines_spread_the_discount_and_take_inclusive_tax_out() -> None:
    lines = bookings.sale_lines(
        [
            SoldItem("sel_a", 1_190, tax_minor=190, tax_included=True),
            SoldItem("sel_b", 810, tax_minor=81),
        ],
        discount_minor=200,
        tax_minor=81,
    )
    # The discount splits 119:81 of 200; inclusive tax comes out of the net.
    assert lines == [
        SaleLine("sel_a", 1_190 - 119 - 190, tax_minor=190),
        SaleLine("sel_b", 810 - 81, tax_minor=81),
    ]
    untaxed_lines = bookings.sale_lines(
        [SoldItem("sel_a", 300), SoldItem("sel_b", 100)], discount_minor=0, tax_minor=40
    )
    assert [line.tax_minor for line in untaxed_lines] == [30, 10]  # the order's tax spread


def test_a_partial_capture_books_its_share_of_every_account() -> None:
    sale = Sale(
        "ord_eu_1",
        "eu",
        "EUR",
        "cus_1",
        (SaleLine("sel_a", 999, tax_minor=1), SaleLine("sel_b", 1_000)),
        shipping_minor=0,
    )
    whole = bookings.capture_of_sale(
        sale,
        payment_id="pay_1",
        amount_minor=2_000,
        funding_account=processor_clearing("sandbox"),
        rates=RATES,
        occurred_at=AT,
    )
    half = bookings.capture_of_sale(
        sale,
        payment_id="pay_2",
        amount_minor=1_000,
        funding_account=wallet_liability("cus_1"),
        rates=RATES,
        occurred_at=AT,
    )
    assert whole.amount() == 2_000 and half.amount() == 1_000
    for posting in whole.postings:
        share = half.on(
            posting.account.replace(processor_clearing("sandbox"), wallet_liability("cus_1"))
        )
        assert abs(share * 2 - posting.amount_minor) <= 2
    with pytest.raises(UnbalancedTransaction, match="not within"):
        bookings.capture_of_sale(
            sale,
            payment_id="pay_3",
            amount_minor=2_001,
            funding_account=processor_clearing("sandbox"),
            rates=RATES,
            occurred_at=AT,
        )


# -- refunds and reversals --------------------------------------------------------------------


def test_refunds_in_parts_end_exactly_reversed_without_sign_flips() -> None:
    capture = a_capture()
    total = capture.amount()
    refunded = 0
    booked = []
    for index, amount in enumerate([1, 333, 4_999, 7, total - 1 - 333 - 4_999 - 7]):
        refund = bookings.refund(
            capture,
            amount_minor=amount,
            refunded_before_minor=refunded,
            reference=f"re_{index}",
            occurred_at=AT,
        )
        refunded += amount
        assert refund.amount() == amount
        assert (refund.kind, refund.order_id, refund.payment_id) == ("refund", "ord_eu_1", "pay_1")
        booked.append(refund)
    net: dict[str, int] = {}
    for entry in [capture, *booked]:
        for posting in entry.postings:
            net[posting.account] = net.get(posting.account, 0) + posting.amount_minor
    assert set(net.values()) == {0}
    # Sellers' accounts only ever move back toward zero.
    for refund in booked:
        for seller in ("sel_a", "sel_b"):
            assert refund.on(seller_payable(seller)) >= 0


def test_a_refund_beyond_the_capture_is_refused() -> None:
    capture = a_capture()
    with pytest.raises(UnbalancedTransaction, match="exceeds"):
        bookings.refund(
            capture, amount_minor=2, refunded_before_minor=16_200, reference="r", occurred_at=AT
        )


def test_a_refund_can_go_to_the_wallet_instead() -> None:
    refund = bookings.refund(
        a_capture(),
        amount_minor=1_000,
        refunded_before_minor=0,
        reference="re_1",
        occurred_at=AT,
        funding=bookings.wallet_funding("cus_1", 1_000),
    )
    assert refund.on(wallet_liability("cus_1")) == -1_000
    assert refund.on(processor_clearing("sandbox")) == 0


def test_refunding_returned_lines_gives_back_their_share_only() -> None:
    refund = bookings.refund_lines(
        a_capture(),
        lines=[SaleLine("sel_a", 10_000, tax_minor=700, category="cat_books_fiction")],
        region="eu",
        rates=RATES,
        reference="rma_1",
        occurred_at=AT,
    )
    assert refund.on(seller_payable("sel_a")) == 8_500
    assert refund.on(seller_payable("sel_b")) == 0
    assert refund.on(platform_revenue()) == 1_500
    assert refund.on(tax_payable("eu")) == 700
    assert refund.on(processor_clearing("sandbox")) == -10_700


def test_a_reversal_negates_every_posting_once() -> None:
    capture = a_capture()
    undo = bookings.reversal(capture, occurred_at=AT, memo="booked twice by mistake")
    assert undo.reverses == capture.transaction_id
    assert (undo.kind, undo.reference, undo.order_id) == (
        "reversal",
        capture.transaction_id,
        "ord_eu_1",
    )
    assert all(undo.on(p.account) == -p.amount_minor for p in capture.postings)
    assert bookings.reversal(capture, occurred_at=AT).transaction_id == undo.transaction_id


# -- wallets and payouts ----------------------------------------------------------------------


def test_wallet_top_up_spend_and_payout_are_balanced() -> None:
    topup = bookings.wallet_topup(
        customer_id="cus_1", amount_minor=5_000, currency="INR", reference="top_1", occurred_at=AT
    )
    assert topup.on(wallet_liability("cus_1")) == -5_000
    assert topup.on(processor_clearing("sandbox")) == 5_000
    spend = bookings.wallet_spend(
        customer_id="cus_1",
        amount_minor=1_200,
        currency="INR",
        reference="spend_1",
        occurred_at=AT,
        to=[("customer_funds:cus_1", 1_200)],
    )
    assert spend.on(wallet_liability("cus_1")) == 1_200
    payout = bookings.payout(
        seller_id="sel_a", amount_minor=800, currency="INR", reference="b1", occurred_at=AT
    )
    assert payout.on(seller_payable("sel_a")) == 800
    assert payout.on(seller_payouts_cash()) == -800
    fee = bookings.processor_fee(
        gateway="sandbox", amount_minor=30, currency="INR", reference="fee_1", occurred_at=AT
    )
    assert fee.order_id is None and fee.totals() == {"INR": 0}
