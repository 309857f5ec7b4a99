"""PostgreSQL adapter of the order repository (region-partitioned tables), and its unit of work.

Every statement names the region next to the order id, so PostgreSQL prunes to the one
partition that holds the order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection

from transactional.orders.model import (
    FulfilmentGroup,
    Order,
    OrderLine,
    OrderNotFound,
    OrderPage,
    PendingChange,
    ShippingAddress,
    Totals,
    Transition,
    region_of,
)
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_ORDER_COLUMNS = (
    "region, order_id, checkout_id, customer_id, status, currency, subtotal_minor, "
    "discount_minor, shipping_minor, tax_minor, grand_total_minor, ship_country, "
    "ship_subdivision, ship_city, ship_postal_code, address_id, payment_method, payment_id, "
    "paid_minor, refunded_minor, placed_at, updated_at, pending_status, pending_cause, "
    "pending_actor, pending_note, pending_since, pending_attempts, pending_retry_at"
)
_LINE_COLUMNS = (
    "region, order_id, line_id, position, sku, product_id, seller_id, title, quantity, "
    "unit_price_minor, warehouse_id, group_id, tax_rate, tax_minor, tax_included"
)
_GROUP_COLUMNS = (
    "region, order_id, group_id, position, seller_id, warehouse_id, status, shipment_id, "
    "carrier, tracking_number"
)


def _names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def _insert(table: str, columns: str) -> Any:
    names = _names(columns)
    return sql(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    )


def _region(order_id: str) -> str | None:
    try:
        return region_of(order_id)
    except OrderNotFound:
        return None


# Statements and row builders shared with the pipelined adapter (``pipelined.py``).
CLAIM_CHECKOUT = (
    "INSERT INTO order_checkouts (checkout_id, region, order_id) "
    "VALUES (:checkout_id, :region, :order_id) ON CONFLICT DO NOTHING"
)
INSERT_ORDER = _insert("orders", _ORDER_COLUMNS).text
INSERT_LINE = _insert("order_lines", _LINE_COLUMNS).text
INSERT_GROUP = _insert("fulfilment_groups", _GROUP_COLUMNS).text
UPDATE_ORDER = (
    "UPDATE orders SET status = :status, payment_id = :payment_id, "
    "paid_minor = :paid_minor, refunded_minor = :refunded_minor, "
    "updated_at = :updated_at, pending_status = :pending_status, "
    "pending_cause = :pending_cause, pending_actor = :pending_actor, "
    "pending_note = :pending_note, pending_since = :pending_since, "
    "pending_attempts = :pending_attempts, pending_retry_at = :pending_retry_at "
    "WHERE region = :region AND order_id = :order_id"
)
UPDATE_GROUP = (
    "UPDATE fulfilment_groups SET status = :status, shipment_id = :shipment_id, "
    "carrier = :carrier, tracking_number = :tracking_number "
    "WHERE region = :region AND order_id = :order_id AND group_id = :group_id"
)
# Numbered after the order's last transition, in the order given, in one statement.
INSERT_TRANSITIONS = (
    "INSERT INTO order_transitions (region, order_id, seq, from_status, to_status, at, cause, "
    "actor) SELECT :region, :order_id, last.seq + m.n, m.f, m.t, m.a, m.c, m.w "
    "FROM (SELECT coalesce(max(seq), 0) AS seq FROM order_transitions "
    "WHERE region = :region AND order_id = :order_id) AS last, "
    "unnest(CAST(:from_statuses AS text[]), CAST(:to_statuses AS text[]), "
    "CAST(:ats AS timestamptz[]), CAST(:causes AS text[]), CAST(:actors AS text[])) "
    "WITH ORDINALITY AS m(f, t, a, c, w, n)"
)


def claim_row(order: Order) -> dict[str, Any]:
    """The order_checkouts row: one order per checkout."""
    return {"checkout_id": order.checkout_id, "region": order.region, "order_id": order.order_id}


def order_row(order: Order) -> dict[str, Any]:
    """The orders row of an order."""
    totals, address = order.totals, order.shipping_address
    return {
        "region": order.region,
        "order_id": order.order_id,
        "checkout_id": order.checkout_id,
        "customer_id": order.customer_id,
        "status": order.status,
        "currency": order.currency,
        "subtotal_minor": totals.subtotal_minor,
        "discount_minor": totals.discount_minor,
        "shipping_minor": totals.shipping_minor,
        "tax_minor": totals.tax_minor,
        "grand_total_minor": totals.grand_total,
        "ship_country": address.country,
        "ship_subdivision": address.subdivision,
        "ship_city": address.city,
        "ship_postal_code": address.postal_code,
        "address_id": address.address_id,
        "payment_method": order.payment_method,
        "payment_id": order.payment_id,
        "paid_minor": order.paid_minor,
        "refunded_minor": order.refunded_minor,
        "placed_at": order.placed_at,
        "updated_at": order.updated_at,
        **_pending_row(order.pending),
    }


def line_rows(order: Order) -> list[dict[str, Any]]:
    """The order_lines rows of an order, with their fulfilment group."""
    group_of = {line_id: group.group_id for group in order.groups for line_id in group.line_ids}
    return [
        {
            "region": order.region,
            "order_id": order.order_id,
            "line_id": line.line_id,
            "position": position,
            "sku": line.sku,
            "product_id": line.product_id,
            "seller_id": line.seller_id,
            "title": line.title,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
            "warehouse_id": line.warehouse_id,
            "group_id": group_of[line.line_id],
            "tax_rate": line.tax_rate,
            "tax_minor": line.tax_minor,
            "tax_included": line.tax_included,
        }
        for position, line in enumerate(order.lines)
    ]


def group_rows(order: Order) -> list[dict[str, Any]]:
    """The fulfilment_groups rows of an order."""
    return [
        {
            "region": order.region,
            "order_id": order.order_id,
            "group_id": group.group_id,
            "position": position,
            "seller_id": group.seller_id,
            "warehouse_id": group.warehouse_id,
            "status": group.status,
            "shipment_id": group.shipment_id,
            "carrier": group.carrier,
            "tracking_number": group.tracking_number,
        }
        for position, group in enumerate(order.groups)
    ]


def transition_rows(order: Order) -> dict[str, Any]:
    """The transitions made in ``order.history``, as the arrays of INSERT_TRANSITIONS."""
    return {
        "region": order.region,
        "order_id": order.order_id,
        "from_statuses": [move.from_status for move in order.history],
        "to_statuses": [move.to_status for move in order.history],
        "ats": [move.at for move in order.history],
        "causes": [move.cause for move in order.history],
        "actors": [move.actor for move in order.history],
    }


class SqlOrderRepository:
    """Orders, lines, fulfilment groups and transitions, partitioned by region."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, order: Order) -> bool:
        """Claim the checkout, then insert the order; False if the checkout has an order."""
        claimed = self._connection.execute(sql(CLAIM_CHECKOUT), claim_row(order))
        if claimed.rowcount != 1:
            return False
        self._connection.execute(sql(INSERT_ORDER), order_row(order))
        self._connection.execute(sql(INSERT_LINE), line_rows(order))
        self._connection.execute(sql(INSERT_GROUP), group_rows(order))
        return True

    def by_checkout(self, checkout_id: str) -> Order | None:
        """The order placed from a checkout, or None."""
        order_id = self._connection.execute(
            sql("SELECT order_id FROM order_checkouts WHERE checkout_id = :id"),
            {"id": checkout_id},
        ).scalar_one_or_none()
        return None if order_id is None else self.get(order_id)

    def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """An order with lines and groups (locked if asked), or None."""
        region = _region(order_id)
        if region is None:
            return None
        orders = self._load(
            "region = :region AND order_id = :order_id" + (" FOR UPDATE" if for_update else ""),
            {"region": region, "order_id": order_id},
        )
        return orders[0] if orders else None

    def save(self, order: Order) -> None:
        """Write back status, payment, groups and the transitions made in ``history``."""
        self._connection.execute(sql(UPDATE_ORDER), order_row(order))
        self._connection.execute(sql(UPDATE_GROUP), group_rows(order))
        if order.history:
            self._connection.execute(sql(INSERT_TRANSITIONS), transition_rows(order))

    def transitions(self, order_id: str) -> list[Transition]:
        """Every recorded transition of an order, oldest first."""
        region = _region(order_id)
        rows = self._connection.execute(
            sql(
                "SELECT order_id, from_status, to_status, at, cause, actor FROM order_transitions "
                "WHERE region = :region AND order_id = :order_id ORDER BY seq"
            ),
            {"region": region, "order_id": order_id},
        ).mappings()
        return [Transition(**dict(row)) for row in rows]

    def page_for(self, customer_id: str, page: int, page_size: int) -> OrderPage:
        """A customer's orders, newest first, with the total count."""
        total = self._connection.execute(
            sql("SELECT count(*) FROM orders WHERE customer_id = :customer_id"),
            {"customer_id": customer_id},
        ).scalar_one()
        items = self._load(
            "customer_id = :customer_id ORDER BY placed_at DESC, order_id DESC "
            "LIMIT :limit OFFSET :offset",
            {"customer_id": customer_id, "limit": page_size, "offset": (page - 1) * page_size},
        )
        return OrderPage(items=items, total=int(total), page=page, page_size=page_size)

    def pending_due(self, before: datetime, now: datetime, limit: int) -> list[str]:
        """Ids of orders with a cancel or return begun before ``before`` and due for a retry
        at ``now``, the longest due first."""
        return list(
            self._connection.execute(
                sql(
                    "SELECT order_id FROM orders WHERE pending_status IS NOT NULL "
                    "AND pending_since < :before "
                    "AND (pending_retry_at IS NULL OR pending_retry_at <= :now) "
                    "ORDER BY coalesce(pending_retry_at, pending_since) LIMIT :limit"
                ),
                {"before": before, "now": now, "limit": limit},
            ).scalars()
        )

    def _load(self, where: str, params: Mapping[str, Any]) -> list[Order]:
        """Orders matching ``where`` (in its order), each with its lines and groups."""
        rows = (
            self._connection.execute(
                sql(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {where}"), params
            )
            .mappings()
            .all()
        )
        if not rows:
            return []
        keys = {
            "regions": sorted({row["region"] for row in rows}),
            "ids": [row["order_id"] for row in rows],
        }
        lines = self._children("order_lines", _LINE_COLUMNS, keys)
        groups = self._children("fulfilment_groups", _GROUP_COLUMNS, keys)
        return [
            _order(dict(row), lines.get(row["order_id"], []), groups.get(row["order_id"], []))
            for row in rows
        ]

    def _children(
        self, table: str, columns: str, keys: Mapping[str, Sequence[str]]
    ) -> dict[str, list[Mapping[str, Any]]]:
        rows = self._connection.execute(
            sql(
                f"SELECT {columns} FROM {table} WHERE region = ANY(:regions) "
                "AND order_id = ANY(:ids) ORDER BY order_id, position"
            ),
            dict(keys),
        ).mappings()
        by_order: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_order.setdefault(row["order_id"], []).append(dict(row))
        return by_order


def _order(
    row: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
) -> Order:
    return Order(
        order_id=row["order_id"],
        region=row["region"],
        checkout_id=row["checkout_id"],
        customer_id=row["customer_id"],
        currency=row["currency"].strip(),
        lines=[
            OrderLine(
                line_id=line["line_id"],
                sku=line["sku"],
                product_id=line["product_id"],
                seller_id=line["seller_id"],
                title=line["title"],
                quantity=line["quantity"],
                unit_price_minor=line["unit_price_minor"],
                warehouse_id=line["warehouse_id"],
                tax_rate=line["tax_rate"],
                tax_minor=line["tax_minor"],
                tax_included=line["tax_included"],
            )
            for line in lines
        ],
        groups=[
            FulfilmentGroup(
                group_id=group["group_id"],
                seller_id=group["seller_id"],
                warehouse_id=group["warehouse_id"],
                line_ids=[
                    line["line_id"] for line in lines if line["group_id"] == group["group_id"]
                ],
                status=group["status"],
                shipment_id=group["shipment_id"],
                carrier=group["carrier"],
                tracking_number=group["tracking_number"],
            )
            for group in groups
        ],
        totals=Totals(
            subtotal_minor=row["subtotal_minor"],
            discount_minor=row["discount_minor"],
            shipping_minor=row["shipping_minor"],
            tax_minor=row["tax_minor"],
            grand_total_minor=row["grand_total_minor"],
        ),
        shipping_address=ShippingAddress(
            country=row["ship_country"].strip(),
            subdivision=row["ship_subdivision"],
            city=row["ship_city"],
            postal_code=row["ship_postal_code"],
            address_id=row["address_id"],
        ),
        payment_method=row["payment_method"],
        placed_at=row["placed_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        payment_id=row["payment_id"],
        paid_minor=row["paid_minor"],
        refunded_minor=row["refunded_minor"],
        pending=None
        if row["pending_status"] is None
        else PendingChange(
            to=row["pending_status"],
            cause=row["pending_cause"],
            actor=row["pending_actor"],
            note=row["pending_note"],
            since=row["pending_since"],
            attempts=row["pending_attempts"],
            retry_at=row["pending_retry_at"],
        ),
    )


def _pending_row(pending: PendingChange | None) -> dict[str, Any]:
    return {
        "pending_status": None if pending is None else pending.to,
        "pending_cause": None if pending is None else pending.cause,
        "pending_actor": None if pending is None else pending.actor,
        "pending_note": None if pending is None else pending.note,
        "pending_since": None if pending is None else pending.since,
        "pending_attempts": 0 if pending is None else pending.attempts,
        "pending_retry_at": None if pending is None else pending.retry_at,
    }


class SqlOrdersUnitOfWork(SqlUnitOfWork):
    """A transaction with ``orders`` attached."""

    orders: SqlOrderRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.orders = SqlOrderRepository(self.connection)
        return self
