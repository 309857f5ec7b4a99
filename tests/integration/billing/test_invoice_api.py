"""Invoices end to end on the real stack: a checkout taxes its lines, order.paid (read back
from the outbox) goes through the invoicing consumer's processor and the PostgreSQL inbox,
GET /v1/orders/{id}/invoice returns the PDF, and the totals OCR'd off the rendered page are
what the ledger booked for the order. A refund becomes a credit note."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytesseract
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.billing import write_invoice_pdfs
from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    order_of,
    post_checkout,
    set_stock,
)
from transactional.billing.service import BillingService
from transactional.ledger.model import account_type
from transactional.ledger.repository import SqlLedgerRepository
from transactional.shared.inbox import PostgresInbox
from transactional.shared.processor import IncomingMessage, MessageProcessor, Outcome

pytestmark = pytest.mark.integration


class _NoDeadLetters:
    """The processor's dead-letter port: any use is a test failure."""

    def publish(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"an invoicing event was dead-lettered: {args} {kwargs}")

    def flush(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def reset(self) -> None:
        return None

    def close(self) -> None:
        return None


def _product(client: Any, seller: Mapping[str, Any], category: str, price: int) -> str:
    sku = fresh_sku("INV")
    list_product(client, seller, skus_prices={sku: price}, category_id=category, title="Thing")
    set_stock(client, seller, sku, 20)
    return sku


def _buy(
    client: Any, services: Services, engine: Engine, items: Mapping[str, int]
) -> tuple[dict[str, Any], str]:
    shopper = register(client)
    cart_id = filled_cart(client, shopper, items)
    response = post_checkout(client, shopper, checkout_body(cart_id))
    assert response.status_code == 201, response.text
    order = order_of(engine, response.json()["checkout_id"])
    assert order is not None and order["status"] == "paid"
    return shopper, str(order["order_id"])


def _deliver(
    engine: Engine, billing: BillingService, event_type: str, order_id: str
) -> list[Outcome]:
    """Feed the order's events of a type, as committed to the outbox, to the invoicing
    processor (real inbox) twice: a redelivery must be a duplicate."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT topic, message_key, value FROM outbox "
                "WHERE event_type = :t AND strpos(convert_from(value, 'UTF8'), :k) > 0 ORDER BY id"
            ),
            {"t": event_type, "k": order_id},
        ).all()
    assert rows, f"no {event_type} for {order_id} in the outbox"
    processor = MessageProcessor(
        "souk-billing", billing.handle, PostgresInbox(engine), _NoDeadLetters()
    )
    outcomes = []
    for _ in range(2):
        for offset, (topic, key, value) in enumerate(rows):
            message = IncomingMessage(topic, 0, offset, key, bytes(value))
            outcomes.append(processor.process(message))
    return outcomes


def _ocr_totals(pdf: bytes, page: int = 0) -> dict[str, str]:
    """Total net/tax/gross as read off the rendered page by Tesseract."""
    document = pdfium.PdfDocument(pdf)
    try:
        image = document[page].render(scale=3).to_pil().convert("L")
    finally:
        document.close()
    read = pytesseract.image_to_string(image)
    found = dict(re.findall(r"Total (net|tax|gross):\s*([0-9]+\.[0-9]{2}) EUR", read))
    assert set(found) == {"net", "tax", "gross"}, f"OCR did not find the totals in:\n{read}"
    return found


def _minor(major: str) -> int:
    whole, cents = major.split(".")
    return int(whole) * 100 + int(cents)


def _ledger(engine: Engine, order_id: str) -> dict[str, int]:
    """What the ledger booked for the order's capture: money in, tax owed, sellers' and
    platform's share (credits as positive amounts)."""
    with engine.connect() as connection:
        transactions = SqlLedgerRepository(connection).for_order(order_id)
    captures = [tx for tx in transactions if tx.kind == "capture"]
    assert len(captures) == 1, f"the ledger holds {len(captures)} captures for {order_id}"
    booked: dict[str, int] = {}
    for posting in captures[0].postings:
        kind = account_type(posting.account)
        booked[kind] = booked.get(kind, 0) + posting.amount_minor
    return booked


def test_a_paid_order_gets_an_invoice_whose_ocr_totals_match_the_ledger(
    client: TestClient[Litestar], services: Services, engine: Engine
) -> None:
    admin = admin_headers(services.tokens)
    seller = approved_seller(client, admin)
    phone = _product(client, seller, "cat_electronics_phones", 49_999)
    book = _product(client, seller, "cat_books_fiction", 1_999)
    shopper, order_id = _buy(client, services, engine, {phone: 1, book: 3})

    # Tax extracted at checkout, per line (DE: 19% standard, 7% books), nothing added on top.
    with engine.connect() as connection:
        lines = connection.execute(
            text(
                "SELECT sku, tax_rate, tax_minor, tax_included FROM order_lines "
                "WHERE order_id = :id ORDER BY position"
            ),
            {"id": order_id},
        ).all()
        grand = connection.execute(
            text("SELECT grand_total_minor, tax_minor FROM orders WHERE order_id = :id"),
            {"id": order_id},
        ).one()
    assert {(sku, float(rate), tax, inc) for sku, rate, tax, inc in lines} == {
        (phone, 19.0, 7983, True),  # 49999 * 19/119 = 7983.03
        (book, 7.0, 392, True),  # 5997 * 7/107 = 392.33
    }
    assert tuple(grand) == (49_999 + 3 * 1_999, 0)

    # Before the invoicing consumer has seen order.paid: 404 problem+json.
    early = client.get(f"/v1/orders/{order_id}/invoice", headers=shopper["headers"])
    assert_problem(early, 404, "invoice_not_found")

    billing: BillingService = services["billing"]
    assert _deliver(engine, billing, "order.paid", order_id) == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
    ]

    response = client.get(f"/v1/orders/{order_id}/invoice", headers=shopper["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/pdf")
    assert response.content.startswith(b"%PDF-")
    [invoice] = billing.documents(order_id, None)
    assert f'filename="{invoice.number}.pdf"' in response.headers["content-disposition"]

    totals = {name: _minor(value) for name, value in _ocr_totals(response.content).items()}
    booked = _ledger(engine, order_id)
    money_in = sum(amount for kind, amount in booked.items() if amount > 0)
    assert totals["gross"] == money_in == 49_999 + 3 * 1_999
    assert totals["tax"] == -booked["tax_payable"] == 7983 + 392
    assert totals["net"] == -(booked["seller_payable"] + booked["platform_revenue"])
    assert (invoice.gross_minor, invoice.tax_minor) == (totals["gross"], totals["tax"])


def test_invoice_access_and_one_invoice_per_seller(
    client: TestClient[Litestar], services: Services, engine: Engine
) -> None:
    admin = admin_headers(services.tokens)
    first, second = approved_seller(client, admin), approved_seller(client, admin)
    a = _product(client, first, "cat_grocery_snacks", 499)
    b = _product(client, second, "cat_toys_board_games", 2_999)
    shopper, order_id = _buy(client, services, engine, {a: 2, b: 1})
    billing: BillingService = services["billing"]
    _deliver(engine, billing, "order.paid", order_id)

    invoices = billing.documents(order_id, None)
    assert sorted(i.seller_id for i in invoices) == sorted(
        [first["seller_id"], second["seller_id"]]
    )
    assert all(i.number.startswith("INV-EU-") for i in invoices)
    assert all(i.buyer.name == "Ada Lovelace" and "1 Main St" in i.buyer.address for i in invoices)

    both = client.get(f"/v1/orders/{order_id}/invoice", headers=shopper["headers"])
    assert both.status_code == 200
    document = pdfium.PdfDocument(both.content)
    assert len(document) == 2
    document.close()
    one = client.get(
        f"/v1/orders/{order_id}/invoice",
        params={"seller_id": second["seller_id"]},
        headers=admin,
    )
    assert one.status_code == 200
    assert len(pdfium.PdfDocument(one.content)) == 1

    stranger = register(client)
    assert_problem(
        client.get(f"/v1/orders/{order_id}/invoice", headers=stranger["headers"]),
        404,
        "invoice_not_found",
    )
    assert_problem(
        client.get(
            f"/v1/orders/{order_id}/invoice",
            params={"seller_id": "sel_nobody"},
            headers=shopper["headers"],
        ),
        404,
        "invoice_not_found",
    )
    assert_problem(
        client.get("/v1/orders/not-an-order/invoice", headers=shopper["headers"]),
        404,
        "invoice_not_found",
    )
    assert client.get(f"/v1/orders/{order_id}/invoice").status_code == 401
    bad_kind = client.get(
        f"/v1/orders/{order_id}/invoice", params={"kind": "receipt"}, headers=shopper["headers"]
    )
    assert bad_kind.status_code == 400


def test_a_refund_gets_a_credit_note_correcting_the_invoice(
    client: TestClient[Litestar], services: Services, engine: Engine, tmp_path: Path
) -> None:
    admin = admin_headers(services.tokens)
    seller = approved_seller(client, admin)
    sku = _product(client, seller, "cat_fashion_men", 3_999)
    shopper, order_id = _buy(client, services, engine, {sku: 2})
    billing: BillingService = services["billing"]
    _deliver(engine, billing, "order.paid", order_id)
    assert_problem(
        client.get(
            f"/v1/orders/{order_id}/invoice",
            params={"kind": "credit_note"},
            headers=shopper["headers"],
        ),
        404,
        "invoice_not_found",
    )

    cancelled = client.post(
        f"/v1/orders/{order_id}/cancel",
        json={"reason": "changed my mind"},
        headers=shopper["headers"],
    )
    assert cancelled.status_code == 200, cancelled.text
    assert _deliver(engine, billing, "payment.refunded", order_id) == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
    ]
    [invoice] = billing.documents(order_id, None)
    [note] = billing.documents(order_id, None, kind="credit_note")
    assert note.corrects == invoice.number
    assert note.number.startswith("CN-EU-")
    assert (note.net_minor, note.tax_minor, note.gross_minor) == (
        invoice.net_minor,
        invoice.tax_minor,
        invoice.gross_minor,
    )
    response = client.get(
        f"/v1/orders/{order_id}/invoice", params={"kind": "credit_note"}, headers=shopper["headers"]
    )
    assert response.status_code == 200
    assert f"{note.gross_minor // 100}.{note.gross_minor % 100:02d} EUR" in (
        pdfium.PdfDocument(response.content)[0].get_textpage().get_text_range()
    )
    # What `make demo` writes: the order's invoice and credit note PDFs.
    written = write_invoice_pdfs(billing, [order_id], tmp_path / "invoices")
    assert sorted(path.name for path in written) == [
        f"{order_id}-credit_note.pdf",
        f"{order_id}-invoice.pdf",
    ]
    assert all(path.read_bytes().startswith(b"%PDF-") for path in written)
