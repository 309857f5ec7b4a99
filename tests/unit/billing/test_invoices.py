"""Invoices and credit notes, pure: an order's taxed lines (from the checkout's plan) become
per-seller invoice lines, totals per rate add up, refunds become credit notes that never
credit more than was invoiced, and documents render to a PDF."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pypdfium2 as pdfium
import pytest

from schemas.common import Address
from transactional.billing.model import (
    Invoice,
    Party,
    credits_for,
    invoice_lines,
    number_of,
    sellers_of,
)
from transactional.billing.pdf import amount, render_pdf
from transactional.billing.tax import DEFAULT_RULES_PATH, TaxRules, load_rules
from transactional.catalog.model import SkuOffer
from transactional.checkout.model import Allocation, Checkout, Plan, PlanLine, ShippingAddress
from transactional.checkout.plan import order_of, taxed
from transactional.orders.model import Order
from transactional.orders.placement import NewLine, PlaceOrder, new_order
from transactional.shared.errors import InvalidRequest

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
RULES = load_rules(DEFAULT_RULES_PATH)


def _checkout(
    country: str,
    subdivision: str | None,
    region: str,
    currency: str,
    rules: TaxRules | None = RULES,
) -> Checkout:
    plan = Plan(
        currency=currency,
        lines=(
            PlanLine("SKU-PHONE", "prd_1", "sel_a", "Phone", 1, 49_999),
            PlanLine("SKU-BOOK", "prd_2", "sel_b", "Novel", 3, 1_999),
        ),
        subtotal_minor=49_999 + 3 * 1_999,
        ship_region=region,
        shipping=ShippingAddress(
            full_name="Ada Lovelace",
            line1="1 Main St",
            city="Town",
            postal_code="12345",
            country=country,
            subdivision=subdivision,
        ),
    )
    offers = {
        "SKU-PHONE": SkuOffer("SKU-PHONE", "prd_1", "sel_a", "Phone", "active", {}, "cat_phones"),
        "SKU-BOOK": SkuOffer("SKU-BOOK", "prd_2", "sel_b", "Novel", "active", {}, "cat_books"),
    }
    return Checkout(
        checkout_id="chk_1",
        customer_id="cus_1",
        cart_id="crt_1",
        idempotency_key="k",
        region=region,
        created_at=NOW,
        updated_at=NOW,
        plan=taxed(plan, rules, offers),
    )


def _order(country: str, subdivision: str | None, region: str, currency: str) -> Order:
    checkout = _checkout(country, subdivision, region, currency)
    allocations = [
        Allocation("res_1", "SKU-PHONE", "wh_1", 1),
        Allocation("res_2", "SKU-BOOK", "wh_1", 2),  # one SKU split over two warehouses
        Allocation("res_3", "SKU-BOOK", "wh_2", 1),
    ]
    return order_of(checkout, allocations, {"eu", "us", "in"}, NOW)


def test_eu_checkout_extracts_vat_from_the_prices_and_charges_them_unchanged() -> None:
    order = _order("DE", None, "eu", "EUR")
    phone, books_1, books_2 = order.lines
    assert (phone.tax_rate, phone.tax_minor, phone.tax_included) == (Decimal(19), 7983, True)
    assert (books_1.tax_rate, books_1.tax_minor) == (Decimal(7), 262)  # 3998 * 7/107 = 261.6
    assert books_2.tax_minor == 131  # 1999 * 7/107 = 130.8
    assert order.totals.tax_minor == 0  # nothing added on top
    assert order.totals.grand_total == 49_999 + 3 * 1_999
    assert order.tax_included_minor == order.tax_due_minor == 7983 + 262 + 131


def test_us_checkout_adds_the_state_sales_tax_on_top() -> None:
    order = _order("US", "CA", "us", "USD")
    phone, books_1, books_2 = order.lines
    assert (phone.tax_rate, phone.tax_minor, phone.tax_included) == (Decimal("7.25"), 3625, False)
    assert books_1.tax_minor == 290  # 3998 * 7.25% = 289.855
    assert books_2.tax_minor == 145  # 1999 * 7.25% = 144.93
    assert order.totals.tax_minor == 3625 + 290 + 145
    assert order.totals.grand_total == order.totals.subtotal_minor + order.totals.tax_minor
    assert order.tax_included_minor == 0


def test_without_rules_the_order_is_untaxed() -> None:
    checkout = _checkout("DE", None, "eu", "EUR", rules=None)
    order = order_of(checkout, [Allocation("res_1", "SKU-PHONE", "wh_1", 1)], {"eu"}, NOW)
    assert [(line.tax_rate, line.tax_minor) for line in order.lines] == [(Decimal(0), 0)]
    assert order.tax_due_minor == order.totals.tax_minor == 0


def test_a_new_order_refuses_a_tax_larger_than_an_inclusive_line() -> None:
    command = PlaceOrder(
        checkout_id="chk_1",
        customer_id="cus_1",
        region="eu",
        currency="EUR",
        lines=[NewLine("S", "p", "s", "T", 1, 100, "wh", Decimal(19), 101, True)],
        shipping_address=Address(country="DE"),
    )
    with pytest.raises(InvalidRequest) as raised:
        new_order(command, {"eu"}, NOW)
    assert raised.value.code == "invalid_tax"


def _invoice(order: Order, seller_id: str, sequence: int) -> Invoice:
    return Invoice(
        invoice_id=f"inv_{sequence}",
        kind="invoice",
        number=number_of("invoice", order.region, sequence),
        sequence=sequence,
        seller_id=seller_id,
        region=order.region,
        order_id=order.order_id,
        reference=order.order_id,
        currency=order.currency,
        issued_at=NOW,
        supplied_at=NOW,
        prices_include_tax=True,
        seller=Party("Seller GmbH", ("Hauptstr. 1", "10115 Berlin"), "DE", "DE123456789"),
        buyer=Party("Ada Lovelace", ("1 Main St", "12345 Town"), "DE"),
        lines=invoice_lines(order, seller_id),
    )


def test_one_invoice_per_seller_with_totals_per_rate() -> None:
    order = _order("DE", None, "eu", "EUR")
    assert sellers_of(order) == ["sel_a", "sel_b"]
    books = _invoice(order, "sel_b", 7)
    assert books.number == "INV-EU-000007"
    assert [(line.net_minor, line.tax_minor, line.gross_minor) for line in books.lines] == [
        (3998 - 262, 262, 3998),
        (1999 - 131, 131, 1999),
    ]
    [seven] = books.rate_totals()
    assert (seven.rate, seven.tax_minor, seven.gross_minor) == (Decimal(7), 393, 5997)
    assert books.net_minor + books.tax_minor == books.gross_minor == 5997


def test_us_invoice_lines_show_the_tax_on_top_of_the_net_price() -> None:
    order = _order("US", "CA", "us", "USD")
    phone = _invoice(order, "sel_a", 1)
    [line] = phone.lines
    assert (line.net_minor, line.tax_minor, line.gross_minor) == (49_999, 3625, 53_624)


def test_a_full_refund_credits_every_line_exactly() -> None:
    order = _order("DE", None, "eu", "EUR")
    invoices = [_invoice(order, "sel_a", 1), _invoice(order, "sel_b", 1)]
    credits = credits_for(order.totals.grand_total, invoices, [])
    assert [credit.seller_id for credit in credits] == ["sel_a", "sel_b"]
    credited = [line for credit in credits for line in credit.lines]
    invoiced = [line for invoice in invoices for line in invoice.lines]
    assert credited == invoiced
    assert credits[1].corrects == "INV-EU-000001"


def test_partial_refunds_spread_by_gross_and_never_exceed_the_invoices() -> None:
    order = _order("DE", None, "eu", "EUR")
    invoices = [_invoice(order, "sel_a", 1), _invoice(order, "sel_b", 1)]
    grand = order.totals.grand_total
    notes: list[Invoice] = []
    for index, refund in enumerate((1_001, 20_000, grand)):  # the last one asks for too much
        for credit in credits_for(refund, invoices, notes):
            notes.append(
                replace(
                    invoices[0],
                    kind="credit_note",
                    lines=credit.lines,
                    seller_id=credit.seller_id,
                    invoice_id=f"crn_{index}",
                )
            )
    first = [line for note in notes if note.invoice_id == "crn_0" for line in note.lines]
    assert sum(line.gross_minor for line in first) == 1_001
    assert all(line.net_minor + line.tax_minor == line.gross_minor for line in first)
    # Everything credited in the end, to the minor unit, net and tax alike.
    for invoice in invoices:
        for line in invoice.lines:
            mine = [c for note in notes for c in note.lines if c.line_id == line.line_id]
            assert sum(c.gross_minor for c in mine) == line.gross_minor
            assert sum(c.tax_minor for c in mine) == line.tax_minor
    assert credits_for(500, invoices, notes) == []  # nothing left to credit


def test_amounts_print_as_plain_decimals_with_the_currency() -> None:
    assert amount(123_456, "EUR") == "1234.56 EUR"
    assert amount(5, "INR") == "0.05 INR"
    assert amount(-1_000, "USD") == "-10.00 USD"


def test_documents_render_to_a_pdf_with_a_page_each() -> None:
    order = _order("DE", None, "eu", "EUR")
    content = render_pdf([_invoice(order, "sel_a", 1), _invoice(order, "sel_b", 2)])
    assert content.startswith(b"%PDF-")
    document = pdfium.PdfDocument(content)
    try:
        assert len(document) == 2
        text = document[1].get_textpage().get_text_range()
    finally:
        document.close()
    assert "Invoice INV-EU-000002" in text
    assert "Total gross: 59.97 EUR" in text
    assert render_pdf([_invoice(order, "sel_a", 1)]) == render_pdf([_invoice(order, "sel_a", 1)])
