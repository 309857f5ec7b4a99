"""The inventory domain: warehouses, stock levels, reservations and warehouse allocation.

Pure Python, no I/O. PostgreSQL holds the durable truth (``stock_levels``, ``reservations``);
Redis holds real-time available counters used as a fast, atomic gate in front of it. Both are
reached through the ports at the bottom of this module.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol, get_args

from transactional.shared.errors import Conflict, InvalidRequest
from transactional.shared.regions import REGION_COUNTRIES, region_distance

# Units are PostgreSQL INTEGERs: keep every quantity far below 2**31.
MAX_UNITS = 1_000_000_000
_WAREHOUSE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

StockKey = tuple[str, str]  # (sku, warehouse_id)

# Reasons of ``stock.adjusted`` (schemas/inventory.py) a person may give for a count.
AdjustReason = Literal["receipt", "cycle_count", "damage", "correction", "manual"]
# Reasons of ``stock.released``.
ReleaseReason = Literal[
    "expired", "checkout_abandoned", "payment_failed", "order_cancelled", "manual"
]
RELEASE_REASONS: frozenset[str] = frozenset(get_args(ReleaseReason))
# What callers may pass to ``restock`` → the ``stock.adjusted`` reason it is recorded as.
RESTOCK_REASONS: Mapping[str, Literal["return_restock", "order_cancelled"]] = {
    "return": "return_restock",
    "returned": "return_restock",
    "return_restock": "return_restock",
    "cancel": "order_cancelled",
    "cancelled": "order_cancelled",
    "order_cancelled": "order_cancelled",
}


class InsufficientStock(Conflict):
    """Some SKUs of the request do not have enough available units; nothing was reserved."""

    code = "insufficient_stock"

    def __init__(self, skus: Collection[str], detail: str | None = None) -> None:
        short = sorted(set(skus))
        super().__init__(
            detail or f"not enough stock for {', '.join(short)}; nothing was reserved",
            skus=short,
        )
        self.skus = short


class StockBelowReserved(Conflict):
    """On hand cannot drop below the units currently held by open reservations."""

    code = "on_hand_below_reserved"


class ReservationReleased(Conflict):
    """The checkout's reservations were released (expired or cancelled) and cannot be sold."""

    code = "reservation_released"


class ReservationCommitted(Conflict):
    """The reservations were already committed to another order."""

    code = "reservation_committed"


class ReservationStatus(StrEnum):
    """Life cycle of a reservation: held → committed, or held → released."""

    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclass(frozen=True)
class Warehouse:
    """A place that holds stock, in one of Souk's regions."""

    warehouse_id: str
    region: str
    country: str
    name: str


def check_warehouse(warehouse: Warehouse, served_regions: Collection[str]) -> None:
    """Refuse malformed ids, unserved regions and countries outside their region."""
    if not _WAREHOUSE_ID.match(warehouse.warehouse_id):
        raise InvalidRequest(
            f"invalid warehouse id {warehouse.warehouse_id!r}: use lower-case letters, digits, "
            "'_' and '-' (at most 64)",
            code="invalid_warehouse_id",
        )
    if warehouse.region not in served_regions:
        raise InvalidRequest(
            f"unknown region {warehouse.region!r}; Souk serves {', '.join(sorted(served_regions))}",
            code="unknown_region",
        )
    countries = REGION_COUNTRIES.get(warehouse.region)
    if countries is not None and warehouse.country not in countries:
        raise InvalidRequest(
            f"{warehouse.country} is not in region {warehouse.region!r} "
            f"({', '.join(sorted(countries))})",
            code="country_not_in_region",
        )


@dataclass
class StockLevel:
    """Units of one SKU in one warehouse: on hand, and how many of them are reserved."""

    sku: str
    warehouse_id: str
    region: str
    on_hand: int
    reserved: int

    @property
    def key(self) -> StockKey:
        """(sku, warehouse_id)."""
        return (self.sku, self.warehouse_id)

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved

    def set_on_hand(self, on_hand: int) -> int:
        """Count the shelf: set on-hand units and return the signed change."""
        check_units(on_hand, "on_hand", minimum=0)
        if on_hand < self.reserved:
            raise StockBelowReserved(
                f"{self.sku} in {self.warehouse_id}: {self.reserved} units are reserved by "
                f"open checkouts, so on_hand cannot be {on_hand}; set at least {self.reserved}",
                reserved=self.reserved,
                on_hand=self.on_hand,
            )
        delta = on_hand - self.on_hand
        self.on_hand = on_hand
        return delta


def check_units(value: int, name: str, *, minimum: int) -> None:
    """Refuse counts that are not integers in [minimum, MAX_UNITS]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer", code="invalid_quantity")
    if not minimum <= value <= MAX_UNITS:
        raise InvalidRequest(
            f"{name} must be between {minimum} and {MAX_UNITS}, got {value}",
            code="invalid_quantity",
        )


@dataclass(frozen=True)
class Allocation:
    """Units of a SKU held for a checkout in one warehouse."""

    reservation_id: str
    sku: str
    warehouse_id: str
    quantity: int


@dataclass
class Reservation:
    """A hold of units for a checkout, until it is committed to an order or released."""

    reservation_id: str
    checkout_id: str
    sku: str
    warehouse_id: str
    region: str
    quantity: int
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    status: ReservationStatus = ReservationStatus.HELD
    order_id: str | None = None
    release_reason: str | None = None
    restocked_at: datetime | None = None

    @property
    def key(self) -> StockKey:
        """(sku, warehouse_id)."""
        return (self.sku, self.warehouse_id)

    def allocation(self) -> Allocation:
        """What the caller of ``reserve`` sees."""
        return Allocation(self.reservation_id, self.sku, self.warehouse_id, self.quantity)

    def commit(self, order_id: str, now: datetime) -> bool:
        """Held → committed to ``order_id``; False if it already was (idempotent)."""
        if self.status is ReservationStatus.COMMITTED:
            if self.order_id != order_id:
                raise ReservationCommitted(
                    f"checkout {self.checkout_id} is already sold to order {self.order_id}",
                    order_id=self.order_id,
                )
            return False
        if self.status is ReservationStatus.RELEASED:
            raise ReservationReleased(
                f"the stock held for checkout {self.checkout_id} was released "
                f"({self.release_reason}); reserve again",
                reason=self.release_reason,
            )
        self.status = ReservationStatus.COMMITTED
        self.order_id = order_id
        self.updated_at = now
        return True

    def release(self, reason: str, now: datetime) -> bool:
        """Held → released; False (no-op) once released or committed."""
        if self.status is not ReservationStatus.HELD:
            return False
        self.status = ReservationStatus.RELEASED
        self.release_reason = reason
        self.updated_at = now
        return True

    def restock(self, now: datetime) -> bool:
        """Mark committed units as back on the shelf; False if not committed or done already."""
        if self.status is not ReservationStatus.COMMITTED or self.restocked_at is not None:
            return False
        self.restocked_at = now
        self.updated_at = now
        return True

    def is_expired(self, now: datetime) -> bool:
        """Whether a held reservation outlived its time."""
        return self.status is ReservationStatus.HELD and self.expires_at <= now


@dataclass(frozen=True)
class StockMove:
    """A reservation committed or released by a set-based statement, with its stock row's
    count afterwards (on hand for a sale, available for a release)."""

    reservation_id: str
    sku: str
    warehouse_id: str
    region: str
    quantity: int
    after: int

    @property
    def key(self) -> StockKey:
        """(sku, warehouse_id)."""
        return (self.sku, self.warehouse_id)


class StockRefused(Exception):
    """PostgreSQL's conditional update refused units Redis let through (a lost race or a
    drifted counter): the reservation is retried."""

    def __init__(self, keys: Sequence[StockKey]) -> None:
        super().__init__(f"refused by PostgreSQL: {keys}")
        self.keys = list(keys)


# -- allocation strategy ----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A warehouse that stocks a SKU, with the units it can give right now."""

    warehouse_id: str
    region: str
    available: int


@dataclass(frozen=True)
class Pick:
    """Take ``quantity`` units of ``sku`` from ``warehouse_id``."""

    sku: str
    warehouse_id: str
    quantity: int

    @property
    def key(self) -> StockKey:
        """(sku, warehouse_id)."""
        return (self.sku, self.warehouse_id)


def normalise_lines(lines: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Merge repeated SKUs and validate quantities; the request must not be empty."""
    wanted: dict[str, int] = {}
    for sku, quantity in lines:
        if not isinstance(sku, str) or not sku.strip():
            raise InvalidRequest("every line needs a SKU", code="invalid_sku")
        check_units(quantity, f"quantity of {sku}", minimum=1)
        wanted[sku] = wanted.get(sku, 0) + quantity
        check_units(wanted[sku], f"quantity of {sku}", minimum=1)
    if not wanted:
        raise InvalidRequest("nothing to reserve: the request has no lines", code="empty_request")
    return wanted


def allocate(
    wanted: Mapping[str, int],
    candidates: Mapping[str, Sequence[Candidate]],
    ship_region: str,
) -> list[Pick]:
    """Choose warehouses for every SKU, or raise InsufficientStock naming every short SKU.

    Like Saleor's allocation strategies: ship a line from the nearest warehouse that has all of
    it; if none has, split it across warehouses nearest first (most stock first among equals).
    """
    picks: list[Pick] = []
    short: list[str] = []
    for sku in sorted(wanted):
        quantity = wanted[sku]
        stocked = [c for c in candidates.get(sku, ()) if c.available > 0]
        # Nearest first; among equals the fuller warehouse (fewer splits later), then by id.
        stocked.sort(
            key=lambda c: (region_distance(ship_region, c.region), -c.available, c.warehouse_id)
        )
        whole = next((c for c in stocked if c.available >= quantity), None)
        if whole is not None:
            picks.append(Pick(sku, whole.warehouse_id, quantity))
            continue
        if sum(c.available for c in stocked) < quantity:
            short.append(sku)
            continue
        remaining = quantity
        for candidate in stocked:
            take = min(remaining, candidate.available)
            picks.append(Pick(sku, candidate.warehouse_id, take))
            remaining -= take
            if remaining == 0:
                break
    if short:
        raise InsufficientStock(short)
    return picks


# -- reconciliation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """A Redis counter that disagrees with PostgreSQL (``redis`` None: the key is missing)."""

    sku: str
    warehouse_id: str
    redis: int | None
    postgres: int

    @property
    def missing(self) -> bool:
        """The counter is not in Redis (a cold cache, primed on demand)."""
        return self.redis is None


@dataclass
class DriftReport:
    """What a reconciliation found and fixed."""

    checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    repaired: int = 0

    @property
    def drifted(self) -> int:
        """Counters present in Redis with a different value than PostgreSQL."""
        return sum(1 for d in self.drifts if not d.missing)

    @property
    def missing(self) -> int:
        """Counters absent from Redis."""
        return sum(1 for d in self.drifts if d.missing)


# -- ports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """Outcome of the atomic counter reservation: all taken, or why nothing was."""

    missing: tuple[StockKey, ...] = ()
    short: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every counter was decremented."""
        return not self.missing and not self.short


class StockCounters(Protocol):
    """Real-time available units per (sku, warehouse) (Redis); may raise StoreUnavailable."""

    def read(self, keys: Sequence[StockKey]) -> list[int | None]:
        """Current counters, None where a key is missing."""

    def prime(self, values: Mapping[StockKey, int]) -> None:
        """Set counters that are missing (never overwrites an existing one)."""

    def reserve(self, picks: Sequence[Pick]) -> GateResult:
        """Atomically: if every counter exists and covers its pick, decrement all; else none."""

    def adjust(self, deltas: Mapping[StockKey, int]) -> None:
        """Add signed deltas to the counters that exist (missing ones are primed later)."""

    def compare_and_set(self, changes: Sequence[tuple[StockKey, int | None, int]]) -> int:
        """Per key, atomically: set to the new value if it still holds the expected one."""


class SkuDirectory(Protocol):
    """Which SKUs exist and which seller owns each (the catalog)."""

    def sellers_of(self, skus: Collection[str]) -> dict[str, str]:
        """Seller id of each known SKU; unknown SKUs are absent."""


class SellerAccounts(Protocol):
    """The seller account a customer operates, if any (the sellers slice)."""

    def seller_of(self, customer_id: str) -> str | None:
        """The approved seller id of a customer, or None."""


class InventoryRepository(Protocol):
    """Durable stock and reservations (PostgreSQL)."""

    def lock_checkout(self, checkout_id: str) -> None:
        """Serialise work on one checkout until the transaction ends."""

    def try_lock_checkout(self, checkout_id: str) -> bool:
        """Like lock_checkout, but give up at once if someone else holds it."""

    def lock_order(self, order_id: str) -> None:
        """Serialise work on one order until the transaction ends."""

    def warehouses(self) -> list[Warehouse]:
        """Every warehouse, by id."""

    def warehouse(self, warehouse_id: str) -> Warehouse | None:
        """One warehouse, or None."""

    def save_warehouse(self, warehouse: Warehouse) -> None:
        """Insert or update a warehouse."""

    def stock_of(self, skus: Collection[str]) -> list[StockLevel]:
        """Stock rows of these SKUs in every warehouse, by (sku, warehouse)."""

    def stock_at(self, keys: Collection[StockKey]) -> list[StockLevel]:
        """Stock rows of these (sku, warehouse) pairs."""

    def stock_page(self, after: StockKey | None, limit: int) -> list[StockLevel]:
        """Up to ``limit`` stock rows after ``after`` in (sku, warehouse) order."""

    def availability(self, skus: Collection[str]) -> dict[str, int]:
        """Available units per SKU summed over warehouses (known SKUs only)."""

    def lock_stock(self, sku: str, warehouse_id: str, *, create: bool) -> StockLevel | None:
        """The row locked for update; created with zero units first if asked to."""

    def save_on_hand(self, level: StockLevel) -> None:
        """Persist a counted on-hand."""

    def reserve_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel | None:
        """Hold units only if available (conditional update); None if refused."""

    def commit_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Held units leave: on_hand and reserved both drop."""

    def release_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Held units become available again."""

    def restock_units(self, sku: str, warehouse_id: str, quantity: int) -> StockLevel:
        """Sold units are back on the shelf."""

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

    def returned_units(self, order_id: str) -> dict[StockKey, int]:
        """Units of an order that returns took back so far, per stock key."""

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Insert new reservations."""

    def save_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Persist status changes."""

    def reservations_of_checkout(self, checkout_id: str) -> list[Reservation]:
        """A checkout's reservations, locked for update."""

    def reservations_of_order(self, order_id: str) -> list[Reservation]:
        """An order's reservations, locked for update."""

    def expired_checkouts(self, now: datetime, limit: int) -> list[str]:
        """Checkouts with held reservations past their expiry, oldest first."""

    def held_of_checkout_skip_locked(self, checkout_id: str) -> list[Reservation]:
        """Held reservations of a checkout not locked by anyone else, locked for update."""
