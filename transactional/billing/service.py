"""Billing's use cases: issue a paid order's invoices (one per seller), credit notes for its
refunds, and hand the documents out as PDF to the buyer or an admin.

Issuing runs in the caller's transaction (the invoicing consumer's inbox transaction, so an
event is invoiced exactly once) or in its own (:meth:`BillingService.issue`, the CLI). Both
are idempotent: a document exists once per (order, seller) or (refund, seller), checked
under the series lock, so concurrent issuers never number one document twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec
from sqlalchemy import Connection, Engine

from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.orders import OrderPaid
from schemas.payments import PaymentRefunded
from transactional.billing.model import (
    Invoice,
    InvoiceNotFound,
    Kind,
    credits_for,
    invoice_lines,
    number_of,
    sellers_of,
)
from transactional.billing.pdf import render_pdf
from transactional.billing.repository import SqlBillingRepository
from transactional.billing.tax import TaxRules
from transactional.orders.model import Order, OrderNotFound
from transactional.shared.auth import Principal
from transactional.shared.regions import region_of_country

# The events the invoicing consumer acts on; anything else on its topics is skipped.
INVOICED_EVENTS = frozenset({"order.paid", "payment.refunded"})


class BillingService:
    """Invoices and credit notes of paid orders, and their PDFs."""

    def __init__(
        self,
        engine: Engine,
        *,
        tax: TaxRules | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._tax = tax
        self._clock = clock

    # -- issuing, in the caller's transaction ---------------------------------------------

    def issue_invoices(self, connection: Connection, order_id: str) -> list[Invoice]:
        """The paid order's invoices, one per seller, issued if missing (none if unpaid);
        OrderNotFound for an unknown order."""
        repo = SqlBillingRepository(connection)
        order = repo.order(order_id)
        if order is None:
            raise OrderNotFound(f"no order {order_id!r} to invoice")
        if order.paid_minor is None:
            return []
        issued: list[Invoice] = []
        buyer = None
        for seller_id in sellers_of(order):  # sorted: series are locked in one order
            repo.lock_series(seller_id, order.region, "invoice")
            existing = repo.find("invoice", order.order_id, seller_id)
            if existing is not None:
                issued.append(existing)
                continue
            buyer = buyer or repo.buyer(order)
            lines = invoice_lines(order, seller_id)
            sequence = repo.next_number(seller_id, order.region, "invoice")
            invoice = Invoice(
                invoice_id=new_id("inv"),
                kind="invoice",
                number=number_of("invoice", order.region, sequence),
                sequence=sequence,
                seller_id=seller_id,
                region=order.region,
                order_id=order.order_id,
                reference=order.order_id,
                currency=order.currency,
                issued_at=self._clock(),
                supplied_at=order.placed_at,
                prices_include_tax=self._inclusive(order),
                seller=repo.seller(seller_id),
                buyer=buyer,
                lines=lines,
            )
            repo.add(invoice)
            issued.append(invoice)
        return issued

    def issue_credit_notes(
        self, connection: Connection, order_id: str, refund_id: str, amount_minor: int
    ) -> list[Invoice]:
        """The credit notes of a refund of the order, one per seller it touches, issued if
        missing (the order's invoices first, if the refund overtook them)."""
        invoices = self.issue_invoices(connection, order_id)
        if not invoices:
            return []
        repo = SqlBillingRepository(connection)
        region = invoices[0].region
        for seller_id in sorted({invoice.seller_id for invoice in invoices}):
            repo.lock_series(seller_id, region, "credit_note")
        credited = repo.of_order(order_id, "credit_note")
        mine = [note for note in credited if note.reference == refund_id]
        if mine:
            return mine
        by_seller = {invoice.seller_id: invoice for invoice in invoices}
        notes: list[Invoice] = []
        for credit in credits_for(amount_minor, invoices, credited):
            invoice = by_seller[credit.seller_id]
            sequence = repo.next_number(credit.seller_id, region, "credit_note")
            note = Invoice(
                invoice_id=new_id("crn"),
                kind="credit_note",
                number=number_of("credit_note", region, sequence),
                sequence=sequence,
                seller_id=credit.seller_id,
                region=region,
                order_id=order_id,
                reference=refund_id,
                currency=invoice.currency,
                issued_at=self._clock(),
                supplied_at=invoice.supplied_at,
                prices_include_tax=invoice.prices_include_tax,
                seller=invoice.seller,
                buyer=invoice.buyer,
                lines=credit.lines,
                corrects=credit.corrects,
            )
            repo.add(note)
            notes.append(note)
        return notes

    def handle(self, envelope: Envelope, payload: msgspec.Struct, connection: Connection) -> None:
        """The invoicing consumer's handler: order.paid → invoices, payment.refunded →
        credit notes; other events are skipped."""
        if isinstance(payload, OrderPaid):
            self.issue_invoices(connection, payload.order_id)
        elif isinstance(payload, PaymentRefunded):
            self.issue_credit_notes(
                connection, payload.order_id, payload.refund_id, payload.amount.amount_minor
            )

    # -- own transactions --------------------------------------------------------------------

    def issue(self, order_id: str) -> list[Invoice]:
        """Issue the order's missing invoices now (idempotent); its invoices."""
        with self._engine.begin() as connection:
            return self.issue_invoices(connection, order_id)

    def documents(
        self,
        order_id: str,
        principal: Principal | None,
        *,
        seller_id: str | None = None,
        kind: Kind = "invoice",
    ) -> list[Invoice]:
        """The order's invoices (or credit notes), of one seller if given; the buyer's or,
        for an admin (or ``principal`` None: the CLI), anyone's. InvoiceNotFound if none."""
        with self._engine.connect() as connection:
            repo = SqlBillingRepository(connection)
            order = repo.order(order_id)
            if order is None or not _may_see(order, principal):
                raise InvoiceNotFound(f"no order {order_id!r}", order_id=order_id)
            found = [
                doc
                for doc in repo.of_order(order_id, kind)
                if seller_id is None or doc.seller_id == seller_id
            ]
        if not found:
            what = "credit note" if kind == "credit_note" else "invoice"
            of_seller = f" from seller {seller_id}" if seller_id else ""
            raise InvoiceNotFound(
                f"order {order_id} has no {what}{of_seller} yet (invoices are issued once it "
                "is paid)",
                order_id=order_id,
                seller_id=seller_id,
            )
        return found

    def pdf(
        self,
        order_id: str,
        principal: Principal | None,
        *,
        seller_id: str | None = None,
        kind: Kind = "invoice",
    ) -> tuple[bytes, Sequence[Invoice]]:
        """The documents as one PDF (a page or more each), with the documents."""
        documents = self.documents(order_id, principal, seller_id=seller_id, kind=kind)
        return render_pdf(documents), documents

    def _inclusive(self, order: Order) -> bool:
        if any(line.tax_included for line in order.lines):
            return True
        ship_region = region_of_country(order.shipping_address.country)
        return bool(self._tax and ship_region and self._tax.prices_include_tax(ship_region))


def _may_see(order: Order, principal: Principal | None) -> bool:
    return principal is None or principal.is_admin or principal.customer_id == order.customer_id
