"""In-memory fakes of the inventory ports: a transactional repository and Redis-like counters."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tests.fakes import FakeUnitOfWork
from transactional.inventory.model import (
    GateResult,
    Pick,
    Reservation,
    ReservationStatus,
    StockKey,
    StockLevel,
    Warehouse,
)
from transactional.shared.errors import StoreUnavailable

WAREHOUSES = [
    Warehouse("wh_eu_1", "eu", "DE", "EU 1"),
    Warehouse("wh_eu_2", "eu", "FR", "EU 2"),
    Warehouse("wh_us_1", "us", "US", "US 1"),
    Warehouse("wh_in_1", "in", "IN", "IN 1"),
]


class FakeInventory:
    """The repository port over dicts; mirrors the SQL adapter's conditional updates."""

    def __init__(self) -> None:
        self.warehouses_by_id: dict[str, Warehouse] = {w.warehouse_id: w for w in WAREHOUSES}
        self.stock: dict[StockKey, list[int]] = {}  # key -> [on_hand, reserved]
        self.rows: dict[str, Reservation] = {}
        self.refuse: set[StockKey] = set()  # PostgreSQL refuses these (simulated drift)
        self.refuse_once: set[StockKey] = set()  # ... only the next time (a lost race)
        self.busy: set[str] = set()  # checkouts another process holds
        # Returns' units: (return, sku, warehouse) -> (order, resellable, damaged).
        self.taken: dict[tuple[str, str, str], tuple[str, int, int]] = {}
        self.damaged: dict[StockKey, int] = {}

    # test helpers
    def put(self, sku: str, warehouse_id: str, on_hand: int, reserved: int = 0) -> None:
        self.stock[(sku, warehouse_id)] = [on_hand, reserved]

    def level(self, key: StockKey) -> StockLevel:
        on_hand, reserved = self.stock[key]
        region = self.warehouses_by_id[key[1]].region
        return StockLevel(key[0], key[1], region, on_hand, reserved)

    # port
    def lock_checkout(self, checkout_id: str) -> None:
        pass

    def try_lock_checkout(self, checkout_id: str) -> bool:
        return checkout_id not in self.busy

    def lock_order(self, order_id: str) -> None:
        pass

    def warehouses(self) -> list[Warehouse]:
        return sorted(self.warehouses_by_id.values(), key=lambda w: w.warehouse_id)

    def warehouse(self, warehouse_id: str) -> Warehouse | None:
        return self.warehouses_by_id.get(warehouse_id)

    def save_warehouse(self, warehouse: Warehouse) -> None:
        self.warehouses_by_id[warehouse.warehouse_id] = warehouse

    def stock_of(self, skus: Collection[str]) -> list[StockLevel]:
        return [self.level(k) for k in sorted(self.stock) if k[0] in skus]

    def stock_at(self, keys: Collection[StockKey]) -> list[StockLevel]:
        return [self.level(k) for k in sorted(self.stock) if k in keys]

    def stock_page(self, after: StockKey | None, limit: int) -> list[StockLevel]:
        keys = [k for k in sorted(self.stock) if after is None or k > after]
        return [self.level(k) for k in keys[:limit]]

    def availability(self, skus: Collection[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for (sku, _), (on_hand, reserved) in self.stock.items():
            if sku in skus:
                out[sku] = out.get(sku, 0) + on_hand - reserved
        return out

    def lock_stock(self, sku: str, warehouse_id: str, *, create: bool) -> StockLevel | None:
        if (sku, warehouse_id) not in self.stock:
            if not create:
                return None
            self.put(sku, warehouse_id, 0)
        return self.level((sku, warehouse_id))

    def save_on_hand(self, level: StockLevel) -> None:
        self.stock[level.key][0] = level.on_hand

    def reserve_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel | None:
        key = (sku, warehouse_id)
        if key not in self.stock or key in self.refuse:
            return None
        if key in self.refuse_once:
            self.refuse_once.discard(key)
            return None
        on_hand, reserved = self.stock[key]
        if on_hand - reserved < quantity:
            return None
        self.stock[key][1] += quantity
        return self.level(key)

    def _move(self, key: StockKey, on_hand: int, reserved: int) -> StockLevel:
        row = self.stock[key]
        row[0] += on_hand
        row[1] += reserved
        assert 0 <= row[1] <= row[0], f"CHECK violated for {key}: {row}"
        return self.level(key)

    def commit_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        return self._move((sku, warehouse_id), -quantity, -quantity)

    def release_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        return self._move((sku, warehouse_id), 0, -quantity)

    def restock_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        return self._move((sku, warehouse_id), quantity, 0)

    def take_back_units(
        self,
        return_id: str,
        order_id: str,
        sku: str,
        warehouse_id: str,
        resellable: int,
        damaged: int,
    ) -> StockLevel | None:
        if (return_id, sku, warehouse_id) in self.taken:
            return None
        self.taken[(return_id, sku, warehouse_id)] = (order_id, resellable, damaged)
        key = (sku, warehouse_id)
        self.damaged[key] = self.damaged.get(key, 0) + damaged
        return self._move(key, resellable, 0)

    def returned_units(self, order_id: str) -> dict[StockKey, int]:
        units: dict[StockKey, int] = {}
        for (_, sku, warehouse_id), (order, resellable, damaged) in self.taken.items():
            if order == order_id:
                units[(sku, warehouse_id)] = (
                    units.get((sku, warehouse_id), 0) + resellable + damaged
                )
        return units

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        for r in reservations:
            assert r.reservation_id not in self.rows
            self.rows[r.reservation_id] = replace(r)

    def save_reservations(self, reservations: Sequence[Reservation]) -> None:
        for r in reservations:
            self.rows[r.reservation_id] = replace(r)

    def reservations_of_checkout(self, checkout_id: str) -> list[Reservation]:
        return [replace(r) for r in self.rows.values() if r.checkout_id == checkout_id]

    def reservations_of_order(self, order_id: str) -> list[Reservation]:
        return [replace(r) for r in self.rows.values() if r.order_id == order_id]

    def expired_checkouts(self, now: datetime, limit: int) -> list[str]:
        due = sorted(
            (r.expires_at, r.checkout_id)
            for r in self.rows.values()
            if r.status is ReservationStatus.HELD and r.expires_at <= now
        )
        return list(dict.fromkeys(c for _, c in due))[:limit]

    def held_of_checkout_skip_locked(self, checkout_id: str) -> list[Reservation]:
        return [
            replace(r)
            for r in self.rows.values()
            if r.checkout_id == checkout_id and r.status is ReservationStatus.HELD
        ]


class FakeInventoryUow(FakeUnitOfWork):
    """Rolls the repository back to its state at ``__enter__`` unless committed."""

    def __init__(self) -> None:
        super().__init__()
        self.inventory = FakeInventory()
        self._snapshot: dict[str, Any] | None = None
        self.open = False  # a transaction is in progress

    def __enter__(self) -> Any:
        self._snapshot = copy.deepcopy(
            {
                "stock": self.inventory.stock,
                "rows": self.inventory.rows,
                "taken": self.inventory.taken,
                "damaged": self.inventory.damaged,
            }
        )
        self.open = True
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.open = False

    def commit(self) -> None:
        super().commit()
        self._snapshot = None

    def rollback(self) -> None:
        super().rollback()
        if self._snapshot is not None:
            self.inventory.stock = self._snapshot["stock"]
            self.inventory.rows = self._snapshot["rows"]
            self.inventory.taken = self._snapshot["taken"]
            self.inventory.damaged = self._snapshot["damaged"]
            self._snapshot = None


class FakeCounters:
    """The StockCounters port with Redis semantics (the Lua scripts' rules); ``down`` fails."""

    def __init__(self, in_transaction: Callable[[], bool] = lambda: False) -> None:
        self.values: dict[StockKey, int] = {}
        self.down = False
        self.reserve_calls = 0
        self.in_transaction = in_transaction  # Redis must never be called inside one

    def _check(self) -> None:
        assert not self.in_transaction(), "a Redis call while a database transaction is open"
        if self.down:
            raise StoreUnavailable("redis down")

    def read(self, keys: Sequence[StockKey]) -> list[int | None]:
        self._check()
        return [self.values.get(k) for k in keys]

    def prime(self, values: Mapping[StockKey, int]) -> None:
        self._check()
        for key, value in values.items():
            self.values.setdefault(key, value)

    def reserve(self, picks: Sequence[Pick]) -> GateResult:
        self._check()
        self.reserve_calls += 1
        missing = tuple(p.key for p in picks if p.key not in self.values)
        if missing:
            return GateResult(missing=missing)
        short = tuple(sorted({p.sku for p in picks if self.values[p.key] < p.quantity}))
        if short:
            return GateResult(short=short)
        for p in picks:
            self.values[p.key] -= p.quantity
        return GateResult()

    def adjust(self, deltas: Mapping[StockKey, int]) -> None:
        self._check()
        for key, delta in deltas.items():
            if key in self.values:
                self.values[key] += delta

    def compare_and_set(self, changes: Sequence[tuple[StockKey, int | None, int]]) -> int:
        self._check()
        done = 0
        for key, expected, new in changes:
            if self.values.get(key) == expected:
                self.values[key] = new
                done += 1
        return done


class StaticSkus:
    """A fixed SKU → seller map standing in for the catalog."""

    def __init__(self, sellers: Mapping[str, str] | None = None) -> None:
        self.sellers: dict[str, str] = dict(sellers or {})

    def sellers_of(self, skus: Collection[str]) -> dict[str, str]:
        """Seller id of each known SKU; unknown SKUs are absent."""
        return {sku: self.sellers[sku] for sku in skus if sku in self.sellers}


class StaticSellers:
    """A fixed customer → seller map standing in for the seller service."""

    def __init__(self, sellers: Mapping[str, str] | None = None) -> None:
        self.sellers: dict[str, str] = dict(sellers or {})

    def seller_of(self, customer_id: str) -> str | None:
        """The seller id of a customer, or None."""
        return self.sellers.get(customer_id)
