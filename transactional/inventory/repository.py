"""PostgreSQL adapter of the inventory repository, and the slice's unit of work."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, RowMapping

from transactional.inventory.model import (
    Reservation,
    ReservationStatus,
    StockKey,
    StockLevel,
    Warehouse,
)
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_LEVEL = "s.sku, s.warehouse_id, w.region, s.on_hand, s.reserved"
_RESERVATION = (
    "r.reservation_id, r.checkout_id, r.sku, r.warehouse_id, w.region, r.quantity, r.status, "
    "r.expires_at, r.order_id, r.release_reason, r.restocked_at, r.created_at, r.updated_at"
)
# Advisory-lock keys: one namespace per kind so a checkout and an order id never collide.
_LOCK = sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_TRY_LOCK = sql("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))")


def _move(assignments: str, condition: str = "") -> Any:
    """An UPDATE of one stock row that returns the row as it is afterwards."""
    return sql(
        f"UPDATE stock_levels AS s SET {assignments}, updated_at = now() FROM warehouses AS w "
        f"WHERE w.warehouse_id = s.warehouse_id AND s.sku = :sku "
        f"AND s.warehouse_id = :warehouse_id {condition} RETURNING {_LEVEL}"
    )


# The conditional update is what makes overselling impossible, whatever Redis says.
_RESERVE = _move("reserved = s.reserved + :quantity", "AND s.on_hand - s.reserved >= :quantity")
_COMMIT = _move("on_hand = s.on_hand - :quantity, reserved = s.reserved - :quantity")
_RELEASE = _move("reserved = s.reserved - :quantity")
_RESTOCK = _move("on_hand = s.on_hand + :quantity")
# A return's units: the stock_returns row is the idempotency record (a repeat inserts nothing,
# so it moves nothing).
_TAKE_BACK = sql(
    "WITH claimed AS (INSERT INTO stock_returns "
    "(return_id, order_id, sku, warehouse_id, resellable, damaged) "
    "VALUES (:return_id, :order_id, :sku, :warehouse_id, :resellable, :damaged) "
    "ON CONFLICT DO NOTHING RETURNING sku, warehouse_id) "
    "UPDATE stock_levels AS s SET on_hand = s.on_hand + :resellable, "
    "damaged = s.damaged + :damaged, updated_at = now() FROM warehouses AS w, claimed AS c "
    "WHERE w.warehouse_id = s.warehouse_id AND s.sku = c.sku "
    f"AND s.warehouse_id = c.warehouse_id RETURNING {_LEVEL}"
)


class SqlInventoryRepository:
    """Warehouses, stock levels and reservations in PostgreSQL."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # -- locks ----------------------------------------------------------------------------

    def lock_checkout(self, checkout_id: str) -> None:
        """Serialise work on one checkout until the transaction ends."""
        self._connection.execute(_LOCK, {"key": f"inventory.checkout:{checkout_id}"})

    def try_lock_checkout(self, checkout_id: str) -> bool:
        """Like lock_checkout, but give up at once if someone else holds it."""
        return bool(
            self._connection.execute(
                _TRY_LOCK, {"key": f"inventory.checkout:{checkout_id}"}
            ).scalar_one()
        )

    def lock_order(self, order_id: str) -> None:
        """Serialise work on one order until the transaction ends."""
        self._connection.execute(_LOCK, {"key": f"inventory.order:{order_id}"})

    # -- warehouses -----------------------------------------------------------------------

    def warehouses(self) -> list[Warehouse]:
        """Every warehouse, by id."""
        rows = self._connection.execute(
            sql("SELECT warehouse_id, region, country, name FROM warehouses ORDER BY 1")
        ).mappings()
        return [_warehouse(row) for row in rows]

    def warehouse(self, warehouse_id: str) -> Warehouse | None:
        """One warehouse, or None."""
        row = (
            self._connection.execute(
                sql(
                    "SELECT warehouse_id, region, country, name FROM warehouses "
                    "WHERE warehouse_id = :id"
                ),
                {"id": warehouse_id},
            )
            .mappings()
            .first()
        )
        return None if row is None else _warehouse(row)

    def save_warehouse(self, warehouse: Warehouse) -> None:
        """Insert or update a warehouse."""
        self._connection.execute(
            sql(
                "INSERT INTO warehouses (warehouse_id, region, country, name) "
                "VALUES (:warehouse_id, :region, :country, :name) "
                "ON CONFLICT (warehouse_id) DO UPDATE SET region = EXCLUDED.region, "
                "country = EXCLUDED.country, name = EXCLUDED.name, updated_at = now()"
            ),
            {
                "warehouse_id": warehouse.warehouse_id,
                "region": warehouse.region,
                "country": warehouse.country,
                "name": warehouse.name,
            },
        )

    # -- stock ----------------------------------------------------------------------------

    def stock_of(self, skus: Collection[str]) -> list[StockLevel]:
        """Stock rows of these SKUs in every warehouse, by (sku, warehouse)."""
        rows = self._connection.execute(
            sql(
                f"SELECT {_LEVEL} FROM stock_levels AS s JOIN warehouses AS w USING "
                "(warehouse_id) WHERE s.sku = ANY(:skus) ORDER BY s.sku, s.warehouse_id"
            ),
            {"skus": list(skus)},
        ).mappings()
        return [_level(row) for row in rows]

    def stock_at(self, keys: Collection[StockKey]) -> list[StockLevel]:
        """Stock rows of these (sku, warehouse) pairs."""
        if not keys:
            return []
        rows = self._connection.execute(
            sql(
                f"SELECT {_LEVEL} FROM stock_levels AS s JOIN warehouses AS w USING "
                "(warehouse_id) JOIN unnest(CAST(:skus AS text[]), CAST(:warehouses AS text[])) "
                "AS k(sku, warehouse_id) ON k.sku = s.sku AND k.warehouse_id = s.warehouse_id "
                "ORDER BY s.sku, s.warehouse_id"
            ),
            {"skus": [k[0] for k in keys], "warehouses": [k[1] for k in keys]},
        ).mappings()
        return [_level(row) for row in rows]

    def stock_page(self, after: StockKey | None, limit: int) -> list[StockLevel]:
        """Up to ``limit`` stock rows after ``after`` in (sku, warehouse) order."""
        sku, warehouse_id = after if after is not None else ("", "")
        rows = self._connection.execute(
            sql(
                f"SELECT {_LEVEL} FROM stock_levels AS s JOIN warehouses AS w USING "
                "(warehouse_id) WHERE (s.sku, s.warehouse_id) > (:sku, :warehouse_id) "
                "ORDER BY s.sku, s.warehouse_id LIMIT :limit"
            ),
            {"sku": sku, "warehouse_id": warehouse_id, "limit": limit},
        ).mappings()
        return [_level(row) for row in rows]

    def availability(self, skus: Collection[str]) -> dict[str, int]:
        """Available units per SKU summed over warehouses (known SKUs only)."""
        rows = self._connection.execute(
            sql(
                "SELECT sku, sum(on_hand - reserved) AS available FROM stock_levels "
                "WHERE sku = ANY(:skus) GROUP BY sku"
            ),
            {"skus": list(skus)},
        )
        return {row.sku: int(row.available) for row in rows}

    def lock_stock(self, sku: str, warehouse_id: str, *, create: bool) -> StockLevel | None:
        """The row locked for update; created with zero units first if asked to."""
        params = {"sku": sku, "warehouse_id": warehouse_id}
        if create:
            self._connection.execute(
                sql(
                    "INSERT INTO stock_levels (sku, warehouse_id, on_hand, reserved) "
                    "VALUES (:sku, :warehouse_id, 0, 0) ON CONFLICT DO NOTHING"
                ),
                params,
            )
        row = (
            self._connection.execute(
                sql(
                    f"SELECT {_LEVEL} FROM stock_levels AS s JOIN warehouses AS w USING "
                    "(warehouse_id) WHERE s.sku = :sku AND s.warehouse_id = :warehouse_id "
                    "FOR UPDATE OF s"
                ),
                params,
            )
            .mappings()
            .first()
        )
        return None if row is None else _level(row)

    def save_on_hand(self, level: StockLevel) -> None:
        """Persist a counted on-hand."""
        self._connection.execute(
            sql(
                "UPDATE stock_levels SET on_hand = :on_hand, updated_at = now() "
                "WHERE sku = :sku AND warehouse_id = :warehouse_id"
            ),
            {"sku": level.sku, "warehouse_id": level.warehouse_id, "on_hand": level.on_hand},
        )

    def reserve_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel | None:
        """Hold units only if available (conditional update); None if refused."""
        return self._apply(_RESERVE, sku, warehouse_id, quantity)

    def commit_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Held units leave: on_hand and reserved both drop."""
        return self._required(self._apply(_COMMIT, sku, warehouse_id, quantity), sku, warehouse_id)

    def release_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Held units become available again."""
        return self._required(self._apply(_RELEASE, sku, warehouse_id, quantity), sku, warehouse_id)

    def restock_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Sold units are back on the shelf."""
        return self._required(self._apply(_RESTOCK, sku, warehouse_id, quantity), sku, warehouse_id)

    def take_back_units(
        self,
        return_id: str,
        order_id: str,
        sku: str,
        warehouse_id: str,
        resellable: int,
        damaged: int,
    ) -> StockLevel | None:
        """A return's units of one stock key come back: resellable ones on hand, damaged ones
        to the damaged bucket; None (nothing moved) if this return moved them already."""
        row = (
            self._connection.execute(
                _TAKE_BACK,
                {
                    "return_id": return_id,
                    "order_id": order_id,
                    "sku": sku,
                    "warehouse_id": warehouse_id,
                    "resellable": resellable,
                    "damaged": damaged,
                },
            )
            .mappings()
            .first()
        )
        return None if row is None else _level(row)

    def returned_units(self, order_id: str) -> dict[StockKey, int]:
        """Units of an order that returns took back so far, per stock key."""
        rows = self._connection.execute(
            sql(
                "SELECT sku, warehouse_id, sum(resellable + damaged) AS units FROM stock_returns "
                "WHERE order_id = :order_id GROUP BY sku, warehouse_id"
            ),
            {"order_id": order_id},
        )
        return {(row.sku, row.warehouse_id): int(row.units) for row in rows}

    def _apply(
        self, statement: Any, sku: str, warehouse_id: str, quantity: int
    ) -> StockLevel | None:
        row = (
            self._connection.execute(
                statement, {"sku": sku, "warehouse_id": warehouse_id, "quantity": quantity}
            )
            .mappings()
            .first()
        )
        return None if row is None else _level(row)

    @staticmethod
    def _required(level: StockLevel | None, sku: str, warehouse_id: str) -> StockLevel:
        if level is None:  # reservations reference their stock row: this is a bug
            raise RuntimeError(f"no stock row for {sku} in {warehouse_id}")
        return level

    # -- reservations ---------------------------------------------------------------------

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Insert new reservations."""
        if not reservations:
            return
        self._connection.execute(
            sql(
                "INSERT INTO reservations (reservation_id, checkout_id, sku, warehouse_id, "
                "quantity, status, expires_at, order_id, created_at, updated_at) VALUES "
                "(:reservation_id, :checkout_id, :sku, :warehouse_id, :quantity, :status, "
                ":expires_at, :order_id, :created_at, :updated_at)"
            ),
            [
                {
                    "reservation_id": r.reservation_id,
                    "checkout_id": r.checkout_id,
                    "sku": r.sku,
                    "warehouse_id": r.warehouse_id,
                    "quantity": r.quantity,
                    "status": r.status.value,
                    "expires_at": r.expires_at,
                    "order_id": r.order_id,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                }
                for r in reservations
            ],
        )

    def save_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Persist status changes."""
        if not reservations:
            return
        self._connection.execute(
            sql(
                "UPDATE reservations SET status = :status, order_id = :order_id, "
                "release_reason = :release_reason, restocked_at = :restocked_at, "
                "updated_at = :updated_at WHERE reservation_id = :reservation_id"
            ),
            [
                {
                    "reservation_id": r.reservation_id,
                    "status": r.status.value,
                    "order_id": r.order_id,
                    "release_reason": r.release_reason,
                    "restocked_at": r.restocked_at,
                    "updated_at": r.updated_at,
                }
                for r in reservations
            ],
        )

    def reservations_of_checkout(self, checkout_id: str) -> list[Reservation]:
        """A checkout's reservations, locked for update."""
        return self._reservations("r.checkout_id = :id", checkout_id, "FOR UPDATE OF r")

    def reservations_of_order(self, order_id: str) -> list[Reservation]:
        """An order's reservations, locked for update."""
        return self._reservations("r.order_id = :id", order_id, "FOR UPDATE OF r")

    def expired_checkouts(self, now: datetime, limit: int) -> list[str]:
        """Checkouts with held reservations past their expiry, oldest first."""
        rows = self._connection.execute(
            sql(
                "SELECT checkout_id FROM reservations WHERE status = 'held' "
                "AND expires_at <= :now GROUP BY checkout_id ORDER BY min(expires_at) "
                "LIMIT :limit"
            ),
            {"now": now, "limit": limit},
        )
        return [row.checkout_id for row in rows]

    def held_of_checkout_skip_locked(self, checkout_id: str) -> list[Reservation]:
        """Held reservations of a checkout not locked by anyone else, locked for update."""
        # SKIP LOCKED: two sweepers (two `souk serve` processes) never wait on each other.
        return self._reservations(
            "r.checkout_id = :id AND r.status = 'held'", checkout_id, "FOR UPDATE OF r SKIP LOCKED"
        )

    def _reservations(self, where: str, value: str, lock: str) -> list[Reservation]:
        rows = self._connection.execute(
            sql(
                f"SELECT {_RESERVATION} FROM reservations AS r JOIN warehouses AS w USING "
                f"(warehouse_id) WHERE {where} ORDER BY r.created_at, r.sku, r.warehouse_id "
                f"{lock}"
            ),
            {"id": value},
        ).mappings()
        return [_reservation(row) for row in rows]


def _warehouse(row: RowMapping) -> Warehouse:
    return Warehouse(
        warehouse_id=row["warehouse_id"],
        region=row["region"],
        country=row["country"].strip(),
        name=row["name"],
    )


def _level(row: RowMapping) -> StockLevel:
    return StockLevel(
        sku=row["sku"],
        warehouse_id=row["warehouse_id"],
        region=row["region"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
    )


def _reservation(row: RowMapping) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        checkout_id=row["checkout_id"],
        sku=row["sku"],
        warehouse_id=row["warehouse_id"],
        region=row["region"],
        quantity=row["quantity"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=ReservationStatus(row["status"]),
        order_id=row["order_id"],
        release_reason=row["release_reason"],
        restocked_at=row["restocked_at"],
    )


class SqlInventoryUnitOfWork(SqlUnitOfWork):
    """A transaction with ``inventory`` attached."""

    inventory: SqlInventoryRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.inventory = SqlInventoryRepository(self.connection)
        return self
