"""PostgreSQL adapter of billing: the issued documents, their numbering series, and the reads
an invoice needs from the order, seller, customer and checkout tables.

Numbering: a document takes the next number of its (seller, region, kind) series by
incrementing the series row in the issuing transaction. The row stays locked until that
transaction ends, so concurrent issuers of one series queue up, and a rolled-back issue
gives its number back: the numbers are sequential with no gaps and no duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection

from transactional.billing.model import Invoice, InvoiceLine, Kind, Party
from transactional.customers.repository import SqlCustomerRepository
from transactional.orders.model import Order
from transactional.orders.repository import SqlOrderRepository
from transactional.sellers.repository import SqlSellerRepository
from transactional.shared.db import sql

_COLUMNS = (
    "invoice_id, kind, number, seller_id, region, sequence, order_id, reference, corrects, "
    "currency, issued_at, supplied_at, prices_include_tax, seller, buyer, lines, net_minor, "
    "tax_minor, gross_minor"
)
_INSERT = sql(
    f"INSERT INTO invoices ({_COLUMNS}) VALUES (:invoice_id, :kind, :number, :seller_id, "
    ":region, :sequence, :order_id, :reference, :corrects, :currency, :issued_at, "
    ":supplied_at, :prices_include_tax, CAST(:seller AS jsonb), CAST(:buyer AS jsonb), "
    "CAST(:lines AS jsonb), :net_minor, :tax_minor, :gross_minor)"
)
# Creates the series on first use and locks its row either way (a no-op update locks).
_LOCK_SERIES = sql(
    "INSERT INTO invoice_series (seller_id, region, kind) VALUES (:seller_id, :region, :kind) "
    "ON CONFLICT (seller_id, region, kind) "
    "DO UPDATE SET last_number = invoice_series.last_number RETURNING last_number"
)
_NEXT_NUMBER = sql(
    "UPDATE invoice_series SET last_number = last_number + 1 "
    "WHERE seller_id = :seller_id AND region = :region AND kind = :kind RETURNING last_number"
)


class SqlBillingRepository:
    """Invoices and credit notes in ``invoices``, numbered from ``invoice_series``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # -- documents ---------------------------------------------------------------------------

    def lock_series(self, seller_id: str, region: str, kind: Kind) -> None:
        """Take the series' lock until the transaction ends (creating the series if new)."""
        self._connection.execute(
            _LOCK_SERIES, {"seller_id": seller_id, "region": region, "kind": kind}
        )

    def next_number(self, seller_id: str, region: str, kind: Kind) -> int:
        """The series' next number, taken in this transaction (locked series first)."""
        return int(
            self._connection.execute(
                _NEXT_NUMBER, {"seller_id": seller_id, "region": region, "kind": kind}
            ).scalar_one()
        )

    def add(self, invoice: Invoice) -> None:
        """Insert an issued document."""
        self._connection.execute(_INSERT, _row(invoice))

    def find(self, kind: Kind, reference: str, seller_id: str) -> Invoice | None:
        """The document of a kind for (order or refund, seller), or None."""
        found = self._select(
            "kind = :kind AND reference = :reference AND seller_id = :seller_id",
            kind=kind,
            reference=reference,
            seller_id=seller_id,
        )
        return found[0] if found else None

    def of_order(self, order_id: str, kind: Kind | None = None) -> list[Invoice]:
        """An order's documents (of one kind if given), by seller then number."""
        if kind is None:
            return self._select("order_id = :order_id", order_id=order_id)
        return self._select("order_id = :order_id AND kind = :kind", order_id=order_id, kind=kind)

    def numbers(self, seller_id: str, region: str, kind: Kind) -> list[int]:
        """Every issued sequence number of a series, ascending (for audits and tests)."""
        rows = self._connection.execute(
            sql(
                "SELECT sequence FROM invoices WHERE seller_id = :s AND region = :r "
                "AND kind = :k ORDER BY sequence"
            ),
            {"s": seller_id, "r": region, "k": kind},
        ).scalars()
        return [int(value) for value in rows]

    def _select(self, where: str, **params: Any) -> list[Invoice]:
        rows = self._connection.execute(
            sql(f"SELECT {_COLUMNS} FROM invoices WHERE {where} ORDER BY seller_id, sequence"),
            params,
        ).mappings()
        return [_invoice(dict(row)) for row in rows]

    # -- what an invoice is made of -------------------------------------------------------------

    def order(self, order_id: str) -> Order | None:
        """The order with its lines and their tax, or None."""
        return SqlOrderRepository(self._connection).get(order_id)

    def seller(self, seller_id: str) -> Party:
        """The seller as printed: legal name, trading name, country, tax id document."""
        seller = SqlSellerRepository(self._connection).get(seller_id)
        if seller is None:
            return Party(name=seller_id)
        # A tax id document whose reference is the id itself (not a document-store URI).
        tax_ids = [
            doc.reference
            for doc in seller.documents
            if doc.kind == "tax_id" and "://" not in doc.reference
        ]
        trading = () if seller.display_name == seller.legal_name else (seller.display_name,)
        return Party(
            name=seller.legal_name,
            address=tuple(f"Trading as {name}" for name in trading),
            country=seller.country,
            tax_id=tax_ids[0] if tax_ids else None,
        )

    def buyer(self, order: Order) -> Party:
        """The buyer as printed: the delivery address given at checkout (the saved address
        it named, or the one typed in), else the customer's name and the order's city."""
        customer = SqlCustomerRepository(self._connection).get(order.customer_id)
        name = customer.name if customer is not None else order.customer_id
        coarse = order.shipping_address
        saved = None
        if customer is not None and coarse.address_id is not None:
            saved = next((a for a in customer.addresses if a.address_id == coarse.address_id), None)
        full: Mapping[str, Any] | None = vars(saved) if saved is not None else None
        if full is None:
            full = self._typed_address(order.checkout_id)
        if full is None:
            town = f"{coarse.postal_code or ''} {coarse.city or ''}".strip()
            return Party(name=name, address=(town,) if town else (), country=coarse.country)
        city = " ".join(part for part in (full.get("postal_code"), full.get("city")) if part)
        lines: list[object] = [
            full.get("line1"),
            full.get("line2"),
            city,
            full.get("subdivision"),
        ]
        return Party(
            name=str(full.get("full_name") or name),
            address=tuple(str(line) for line in lines if line),
            country=str(full.get("country") or coarse.country),
        )

    def _typed_address(self, checkout_id: str) -> Mapping[str, Any] | None:
        shipping = self._connection.execute(
            sql("SELECT plan -> 'shipping' FROM checkouts WHERE checkout_id = :id"),
            {"id": checkout_id},
        ).scalar_one_or_none()
        if isinstance(shipping, str):
            shipping = json.loads(shipping)
        return cast(Mapping[str, Any], shipping) if isinstance(shipping, dict) else None


def _party_json(party: Party) -> str:
    return json.dumps(
        {
            "name": party.name,
            "address": list(party.address),
            "country": party.country,
            "tax_id": party.tax_id,
        }
    )


def _line_json(line: InvoiceLine) -> dict[str, Any]:
    return {**vars(line), "tax_rate": str(line.tax_rate)}


def _row(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.invoice_id,
        "kind": invoice.kind,
        "number": invoice.number,
        "seller_id": invoice.seller_id,
        "region": invoice.region,
        "sequence": invoice.sequence,
        "order_id": invoice.order_id,
        "reference": invoice.reference,
        "corrects": invoice.corrects,
        "currency": invoice.currency,
        "issued_at": invoice.issued_at,
        "supplied_at": invoice.supplied_at,
        "prices_include_tax": invoice.prices_include_tax,
        "seller": _party_json(invoice.seller),
        "buyer": _party_json(invoice.buyer),
        "lines": json.dumps([_line_json(line) for line in invoice.lines]),
        "net_minor": invoice.net_minor,
        "tax_minor": invoice.tax_minor,
        "gross_minor": invoice.gross_minor,
    }


def _party(raw: Mapping[str, Any]) -> Party:
    return Party(
        name=raw["name"],
        address=tuple(raw.get("address") or ()),
        country=raw.get("country"),
        tax_id=raw.get("tax_id"),
    )


def _invoice(row: Mapping[str, Any]) -> Invoice:
    return Invoice(
        invoice_id=row["invoice_id"],
        kind=row["kind"],
        number=row["number"],
        sequence=int(row["sequence"]),
        seller_id=row["seller_id"],
        region=row["region"],
        order_id=row["order_id"],
        reference=row["reference"],
        currency=row["currency"].strip(),
        issued_at=row["issued_at"],
        supplied_at=row["supplied_at"],
        prices_include_tax=row["prices_include_tax"],
        seller=_party(row["seller"]),
        buyer=_party(row["buyer"]),
        lines=tuple(
            InvoiceLine(**{**line, "tax_rate": Decimal(line["tax_rate"])}) for line in row["lines"]
        ),
        corrects=row["corrects"],
    )
