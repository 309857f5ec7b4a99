"""The inventory slice's statements for a pipelined unit of work (the checkout's hot path).

The same tables and guarantees as :mod:`transactional.inventory.repository`: a hold is the
conditional update (never below zero); committing and releasing a checkout's reservations
are one set-based statement each, which moves the stock rows with the reservations.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from psycopg import Cursor

from transactional.inventory.model import Reservation, StockLevel, StockMove
from transactional.inventory.repository import _LEVEL, _RESERVE
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, Row, first, pyformat

_LEVELS = pyformat(
    f"SELECT {_LEVEL} FROM stock_levels AS s JOIN warehouses AS w USING (warehouse_id) "
    "WHERE s.sku = ANY(:skus) ORDER BY s.sku, s.warehouse_id"
)
_HOLD = pyformat(_RESERVE.text)
_ADD_RESERVATIONS = pyformat(
    "INSERT INTO reservations (reservation_id, checkout_id, sku, warehouse_id, quantity, "
    "status, expires_at, created_at, updated_at) "
    "SELECT i, :checkout_id, s, w, q, 'held', :expires_at, :now, :now "
    "FROM unnest(CAST(:ids AS text[]), CAST(:skus AS text[]), CAST(:warehouses AS text[]), "
    "CAST(:quantities AS int[])) AS r(i, s, w, q)"
)
# A checkout's held reservations, then their stock rows, locked in (sku, warehouse) order
# before either is changed: the order of every other path (T1's holds, the sweeper, the slow
# path), where the set-based UPDATE below would lock stock rows in hash order (a deadlock).
_LOCK_HELD = pyformat(
    "WITH held AS (SELECT sku, warehouse_id FROM reservations "
    "WHERE checkout_id = :checkout_id AND status = 'held' "
    "ORDER BY sku, warehouse_id FOR UPDATE) "
    "SELECT s.sku FROM stock_levels AS s JOIN (SELECT DISTINCT sku, warehouse_id FROM held) "
    "AS h USING (sku, warehouse_id) ORDER BY s.sku, s.warehouse_id FOR UPDATE OF s"
)
# Held → committed and the units leave the shelf, in one statement (rows locked above).
_COMMIT = pyformat(
    "WITH held AS (SELECT reservation_id, sku, warehouse_id, quantity FROM reservations "
    "WHERE checkout_id = :checkout_id AND status = 'held' "
    "ORDER BY sku, warehouse_id FOR UPDATE), "
    "marked AS (UPDATE reservations AS r SET status = 'committed', order_id = :order_id, "
    "updated_at = :now FROM held WHERE r.reservation_id = held.reservation_id), "
    "units AS (SELECT sku, warehouse_id, sum(quantity) AS quantity FROM held "
    "GROUP BY sku, warehouse_id), "
    "moved AS (UPDATE stock_levels AS s SET on_hand = s.on_hand - units.quantity, "
    "reserved = s.reserved - units.quantity, updated_at = now() FROM units, warehouses AS w "
    "WHERE s.sku = units.sku AND s.warehouse_id = units.warehouse_id "
    "AND w.warehouse_id = s.warehouse_id RETURNING s.sku, s.warehouse_id, w.region, "
    "s.on_hand AS after) "
    "SELECT held.reservation_id, held.sku, held.warehouse_id, moved.region, held.quantity, "
    "moved.after "
    "FROM held JOIN moved USING (sku, warehouse_id) ORDER BY held.sku, held.warehouse_id"
)
# Held → released and the units back on sale, in one statement (rows locked above).
_RELEASE = pyformat(
    "WITH held AS (SELECT reservation_id, sku, warehouse_id, quantity FROM reservations "
    "WHERE checkout_id = :checkout_id AND status = 'held' "
    "ORDER BY sku, warehouse_id FOR UPDATE), "
    "marked AS (UPDATE reservations AS r SET status = 'released', release_reason = :reason, "
    "updated_at = :now FROM held WHERE r.reservation_id = held.reservation_id), "
    "units AS (SELECT sku, warehouse_id, sum(quantity) AS quantity FROM held "
    "GROUP BY sku, warehouse_id), "
    "moved AS (UPDATE stock_levels AS s SET reserved = s.reserved - units.quantity, "
    "updated_at = now() FROM units, warehouses AS w "
    "WHERE s.sku = units.sku AND s.warehouse_id = units.warehouse_id "
    "AND w.warehouse_id = s.warehouse_id RETURNING s.sku, s.warehouse_id, w.region, "
    "s.on_hand - s.reserved AS after) "
    "SELECT held.reservation_id, held.sku, held.warehouse_id, moved.region, held.quantity, "
    "moved.after "
    "FROM held JOIN moved USING (sku, warehouse_id) ORDER BY held.sku, held.warehouse_id"
)


_AVAILABILITY = pyformat(
    "SELECT sku, sum(on_hand - reserved) FROM stock_levels WHERE sku = ANY(:skus) GROUP BY sku"
)
_HELD = pyformat(
    "SELECT count(*) FROM reservations WHERE checkout_id = :checkout_id AND status = 'held'"
)


def _count(cursor: Cursor[Row]) -> int:
    row = first(cursor)
    return 0 if row is None else int(row[0])


def _levels(cursor: Cursor[Row]) -> list[StockLevel]:
    return [StockLevel(*row) for row in cursor.fetchall()]


def _level(cursor: Cursor[Row]) -> StockLevel | None:
    row = first(cursor)
    return None if row is None else StockLevel(*row)


def _moves(cursor: Cursor[Row]) -> list[StockMove]:
    return [StockMove(*row) for row in cursor.fetchall()]


class PipelinedStock:
    """Stock levels and reservations, queued on a pipelined unit of work."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def levels(self, skus: Collection[str]) -> Deferred[list[StockLevel]]:
        """Stock rows of these SKUs in every warehouse, by (sku, warehouse)."""
        return self._uow.query(_LEVELS, {"skus": sorted(skus)}, _levels)

    def availability(self, skus: Collection[str]) -> Deferred[dict[str, int]]:
        """Available units per SKU summed over warehouses (known SKUs only)."""
        return self._uow.query(
            _AVAILABILITY, {"skus": sorted(skus)}, lambda c: {s: int(n) for s, n in c.fetchall()}
        )

    def hold(self, sku: str, warehouse_id: str, quantity: int) -> Deferred[StockLevel | None]:
        """Reserve units if available (the conditional update): the row after, None if refused.

        Queue holds in (sku, warehouse) order so concurrent carts lock rows in one order.
        """
        params: dict[str, Any] = {"sku": sku, "warehouse_id": warehouse_id, "quantity": quantity}
        return self._uow.query(_HOLD, params, _level)

    def held(self, checkout_id: str) -> Deferred[int]:
        """How many of the checkout's reservations are still held."""
        return self._uow.query(_HELD, {"checkout_id": checkout_id}, _count)

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Insert new held reservations of one checkout (same expiry and time)."""
        if not reservations:
            return
        head = reservations[0]
        self._uow.execute(
            _ADD_RESERVATIONS,
            {
                "checkout_id": head.checkout_id,
                "expires_at": head.expires_at,
                "now": head.created_at,
                "ids": [r.reservation_id for r in reservations],
                "skus": [r.sku for r in reservations],
                "warehouses": [r.warehouse_id for r in reservations],
                "quantities": [r.quantity for r in reservations],
            },
        )

    def commit_checkout(
        self, checkout_id: str, order_id: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        """Sell a checkout's held units to the order: one move per reservation committed
        (``after`` = on hand), none if nothing was held any more."""
        self._uow.execute(_LOCK_HELD, {"checkout_id": checkout_id})
        return self._uow.query(
            _COMMIT, {"checkout_id": checkout_id, "order_id": order_id, "now": now}, _moves
        )

    def release_checkout(
        self, checkout_id: str, reason: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        """Give a checkout's held units back: one move per reservation released (``after`` =
        available)."""
        self._uow.execute(_LOCK_HELD, {"checkout_id": checkout_id})
        return self._uow.query(
            _RELEASE, {"checkout_id": checkout_id, "reason": reason, "now": now}, _moves
        )
