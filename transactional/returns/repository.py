"""PostgreSQL adapter of the return repository, and the slice's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import msgspec
from sqlalchemy import Connection, RowMapping

from transactional.returns.model import RefundPlan, Return, ReturnLine
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_COLUMNS = (
    "return_id, order_id, region, customer_id, currency, payment_id, status, lines, comment, "
    "requested_refund_minor, decided_by, decision_note, received_at, stock_moved, refund_id, "
    "refund_amount_minor, refund_goods_minor, refund_shipping_minor, refund_method, "
    "refund_units, refund_planned_at, refunded_at, refund_error, requested_at, updated_at"
)
_NAMES = [name.strip() for name in _COLUMNS.split(",")]
_JSON = frozenset({"lines", "refund_units"})
_INSERT = sql(
    f"INSERT INTO returns ({_COLUMNS}) VALUES "
    f"({', '.join(f'CAST(:{n} AS JSONB)' if n in _JSON else ':' + n for n in _NAMES)})"
)
_UPDATE = sql(
    "UPDATE returns SET "
    + ", ".join(
        f"{n} = CAST(:{n} AS JSONB)" if n in _JSON else f"{n} = :{n}"
        for n in _NAMES
        if n != "return_id"
    )
    + " WHERE return_id = :return_id"
)
_LOCK = sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


class _Line(msgspec.Struct, kw_only=True):
    line_id: str
    sku: str
    seller_id: str
    warehouse_id: str
    quantity: int
    reason: str
    resellable: int = 0
    damaged: int = 0


_lines_decoder = msgspec.json.Decoder(list[_Line])
_units_decoder = msgspec.json.Decoder(dict[str, int])


class SqlReturnRepository:
    """Returns in PostgreSQL, one row each (lines as JSONB: the aggregate goes whole)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def lock_order(self, order_id: str) -> None:
        """Serialise requests and refunds of one order's returns until the transaction ends."""
        self._connection.execute(_LOCK, {"key": f"returns.order:{order_id}"})

    def add(self, ret: Return) -> None:
        """Insert a new return."""
        self._connection.execute(_INSERT, _row(ret))

    def get(self, return_id: str, *, for_update: bool = False) -> Return | None:
        """A return (locked if asked), or None."""
        lock = " FOR UPDATE" if for_update else ""
        row = (
            self._connection.execute(
                sql(f"SELECT {_COLUMNS} FROM returns WHERE return_id = :id{lock}"),
                {"id": return_id},
            )
            .mappings()
            .first()
        )
        return None if row is None else _return(row)

    def save(self, ret: Return) -> None:
        """Write back a return's status, inspection and refund."""
        self._connection.execute(_UPDATE, _row(ret))

    def of_order(self, order_id: str) -> list[Return]:
        """Every return of an order, oldest first."""
        rows = self._connection.execute(
            sql(
                f"SELECT {_COLUMNS} FROM returns WHERE order_id = :id "
                "ORDER BY requested_at, return_id"
            ),
            {"id": order_id},
        ).mappings()
        return [_return(row) for row in rows]

    def of_customer(self, customer_id: str, limit: int, offset: int) -> tuple[list[Return], int]:
        """A customer's returns, newest first, and how many there are."""
        rows = self._connection.execute(
            sql(
                f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM returns "
                "WHERE customer_id = :id ORDER BY requested_at DESC, return_id DESC "
                "LIMIT :limit OFFSET :offset"
            ),
            {"id": customer_id, "limit": limit, "offset": offset},
        ).mappings()
        items = list(rows)
        if items:
            return [_return(row) for row in items], int(items[0]["total"])
        total = self._connection.execute(
            sql("SELECT count(*) FROM returns WHERE customer_id = :id"), {"id": customer_id}
        ).scalar_one()
        return [], int(total)

    def unfinished(self, before: datetime, limit: int, *, unplanned: bool) -> list[str]:
        """Received returns whose stock move or planned refund is not done (with
        ``unplanned``, also those with no refund planned nor refused yet), oldest first."""
        rows = self._connection.execute(
            sql(
                "SELECT return_id FROM returns WHERE status = 'received' "
                "AND (NOT stock_moved OR refund_id IS NOT NULL "
                "OR (:unplanned AND refund_error IS NULL)) AND updated_at < :before "
                "ORDER BY updated_at LIMIT :limit"
            ),
            {"before": before, "limit": limit, "unplanned": unplanned},
        )
        return [row.return_id for row in rows]


def _row(ret: Return) -> dict[str, Any]:
    plan = ret.refund
    return {
        "return_id": ret.return_id,
        "order_id": ret.order_id,
        "region": ret.region,
        "customer_id": ret.customer_id,
        "currency": ret.currency,
        "payment_id": ret.payment_id,
        "status": ret.status,
        "lines": msgspec.json.encode(
            [_Line(**{f: getattr(line, f) for f in _Line.__struct_fields__}) for line in ret.lines]
        ).decode(),
        "comment": ret.comment,
        "requested_refund_minor": ret.requested_refund_minor,
        "decided_by": ret.decided_by,
        "decision_note": ret.decision_note,
        "received_at": ret.received_at,
        "stock_moved": ret.stock_moved,
        "refund_id": None if plan is None else plan.refund_id,
        "refund_amount_minor": None if plan is None else plan.amount_minor,
        "refund_goods_minor": None if plan is None else plan.goods_minor,
        "refund_shipping_minor": None if plan is None else plan.shipping_minor,
        "refund_method": None if plan is None else plan.method,
        "refund_units": None if plan is None else msgspec.json.encode(dict(plan.units)).decode(),
        "refund_planned_at": None if plan is None else plan.planned_at,
        "refunded_at": ret.refunded_at,
        "refund_error": ret.refund_error,
        "requested_at": ret.requested_at,
        "updated_at": ret.updated_at,
    }


def _json(value: Any) -> bytes:
    """A JSONB column as bytes (psycopg hands it back decoded; re-encode for msgspec)."""
    return value.encode() if isinstance(value, str) else msgspec.json.encode(value)


def _return(row: RowMapping) -> Return:
    lines = [
        ReturnLine(
            line_id=line.line_id,
            sku=line.sku,
            seller_id=line.seller_id,
            warehouse_id=line.warehouse_id,
            quantity=line.quantity,
            reason=line.reason,  # type: ignore[arg-type]  # written from a ReturnReason
            resellable=line.resellable,
            damaged=line.damaged,
        )
        for line in _lines_decoder.decode(_json(row["lines"]))
    ]
    plan = None
    if row["refund_id"] is not None:
        plan = RefundPlan(
            refund_id=row["refund_id"],
            amount_minor=row["refund_amount_minor"],
            goods_minor=row["refund_goods_minor"],
            shipping_minor=row["refund_shipping_minor"],
            method=row["refund_method"],
            planned_at=row["refund_planned_at"],
            units=_units_decoder.decode(_json(row["refund_units"] or {})),
        )
    return Return(
        return_id=row["return_id"],
        order_id=row["order_id"],
        region=row["region"],
        customer_id=row["customer_id"],
        currency=row["currency"],
        payment_id=row["payment_id"],
        lines=lines,
        requested_at=row["requested_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        comment=row["comment"],
        requested_refund_minor=row["requested_refund_minor"],
        decided_by=row["decided_by"],
        decision_note=row["decision_note"],
        received_at=row["received_at"],
        stock_moved=row["stock_moved"],
        refund=plan,
        refunded_at=row["refunded_at"],
        refund_error=row["refund_error"],
    )


class SqlReturnsUnitOfWork(SqlUnitOfWork):
    """A transaction with ``returns`` attached."""

    returns: SqlReturnRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.returns = SqlReturnRepository(self.connection)
        return self
