"""Inventory use cases: stock counts, reservations for checkouts, expiry and reconciliation.

Reserving goes Redis first, PostgreSQL second: the Lua gate rejects what is clearly out of
stock without touching a database row, and PostgreSQL's conditional update is the final word,
so a Redis counter that drifted upwards can never oversell. PostgreSQL is the truth; Redis is
repaired from it (on a refused reservation, on a shortfall PostgreSQL does not confirm, on a
cold key, and by ``reconcile``).

No Redis call is made while a PostgreSQL transaction is open: a slow or hung Redis (bounded by
the client's socket timeout) must never keep a transaction, its row locks or its pool
connection waiting.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from schemas.ids import new_id
from schemas.inventory import StockAdjusted
from schemas.registry import REGISTRY
from transactional.inventory.events import committed_event, released_event, reserved_event
from transactional.inventory.model import (
    RELEASE_REASONS,
    RESTOCK_REASONS,
    AdjustReason,
    Allocation,
    Candidate,
    Drift,
    DriftReport,
    GateResult,
    InsufficientStock,
    InventoryRepository,
    Pick,
    Reservation,
    ReservationReleased,
    ReservationStatus,
    SellerAccounts,
    SkuDirectory,
    StockCounters,
    StockKey,
    StockLevel,
    StockMove,
    StockRefused,
    Warehouse,
    allocate,
    check_units,
    check_warehouse,
    normalise_lines,
)
from transactional.shared.auth import Principal
from transactional.shared.errors import Forbidden, InvalidRequest, NotFound, StoreUnavailable
from transactional.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
T = TypeVar("T")

_ATTEMPTS = 4  # of one reserve: races in Redis and refused drifted counters retry this often
_SWEEP_BATCH = 200
_RECONCILE_PAGE = 1000


class InventoryUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the inventory repository attached."""

    inventory: InventoryRepository


@dataclass(frozen=True)
class WarehouseStock:
    """One warehouse's units of a SKU."""

    warehouse_id: str
    region: str
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class StockView:
    """A SKU's stock per warehouse and in total."""

    sku: str
    warehouses: list[WarehouseStock]
    on_hand: int
    reserved: int
    available: int


class _Drifted(Exception):
    """Redis counters disagree with PostgreSQL in a way that blocked a reservation."""

    reason = "drifted"

    def __init__(self, keys: Sequence[StockKey]) -> None:
        super().__init__(f"{self.reason}: {keys}")
        self.keys = list(keys)
        self.skus = sorted({sku for sku, _ in keys})


class _Low(_Drifted):
    """Redis counters below PostgreSQL's made a request short that PostgreSQL can serve."""

    reason = "counters below PostgreSQL"


class InventoryService:
    """The Inventory Service: durable stock in PostgreSQL, real-time counters in Redis."""

    def __init__(
        self,
        uow: Callable[[], InventoryUnitOfWork],
        counters: StockCounters,
        *,
        skus: SkuDirectory,
        sellers: SellerAccounts,
        regions: Iterable[str],
        reservation_ttl_s: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._counters = counters
        self._skus = skus
        self._sellers = sellers
        self._regions = frozenset(regions)
        self._ttl = timedelta(seconds=reservation_ttl_s)
        self._clock = clock

    # -- warehouses -----------------------------------------------------------------------

    def warehouses(self) -> list[Warehouse]:
        """Every warehouse, by id."""
        with self._uow() as uow:
            return uow.inventory.warehouses()

    def put_warehouse(self, actor: Principal, warehouse: Warehouse) -> Warehouse:
        """Create or update a warehouse (admins only)."""
        actor.require_admin()
        check_warehouse(warehouse, self._regions)
        with self._uow() as uow:
            # Reference data, not a stock movement: no event type exists for it (yet).
            uow.inventory.save_warehouse(warehouse)
            uow.commit()
        return warehouse

    # -- reading stock --------------------------------------------------------------------

    def stock(self, sku: str) -> StockView:
        """A SKU's stock per warehouse; NotFound if neither the catalog nor stock knows it."""
        with self._uow() as uow:
            levels = uow.inventory.stock_of([sku])
        if not levels and sku not in self._skus.sellers_of([sku]):
            raise NotFound(f"no SKU {sku}", code="sku_not_found")
        return _view(sku, levels)

    def availability(self, skus: Iterable[str]) -> dict[str, int]:
        """Available units per SKU across warehouses (0 for SKUs without stock)."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        with self._uow() as uow:
            known = uow.inventory.availability(wanted)
        return {sku: known.get(sku, 0) for sku in wanted}

    # -- counting stock -------------------------------------------------------------------

    def set_on_hand(
        self,
        sku: str,
        warehouse_id: str,
        on_hand: int,
        *,
        actor: Principal | None = None,
        reason: AdjustReason = "cycle_count",
    ) -> StockView:
        """Set the on-hand units of a SKU in a warehouse; ``actor`` None is a trusted caller.

        Allowed for admins and the seller owning the SKU; emits ``stock.adjusted``.
        """
        check_units(on_hand, "on_hand", minimum=0)
        owner = self._skus.sellers_of([sku]).get(sku)
        if owner is None:
            raise NotFound(f"no SKU {sku} in the catalog", code="sku_not_found")
        if (
            actor is not None
            and not actor.is_admin
            and self._sellers.seller_of(actor.customer_id) != owner
        ):
            raise Forbidden(
                f"only the seller of {sku} or an admin may count its stock",
                code="not_sku_owner",
            )
        key = (sku, warehouse_id)
        delta = 0
        with self._uow() as uow:
            warehouse = uow.inventory.warehouse(warehouse_id)
            if warehouse is None:
                raise NotFound(f"no warehouse {warehouse_id}", code="warehouse_not_found")
            if warehouse.region not in self._regions:  # its events could not be published
                raise InvalidRequest(
                    f"warehouse {warehouse_id} is in region {warehouse.region!r}, which this "
                    f"deployment does not serve (SOUK_REGIONS)",
                    code="warehouse_not_served",
                )
            # No row and nothing to count: nothing changes (no empty row either).
            level = uow.inventory.lock_stock(sku, warehouse_id, create=on_hand > 0)
            delta = 0 if level is None else level.set_on_hand(on_hand)
            if level is not None and delta:
                uow.inventory.save_on_hand(level)
                uow.emit(
                    REGISTRY.new_event(
                        "stock.adjusted",
                        StockAdjusted(
                            sku=sku,
                            warehouse_id=warehouse_id,
                            delta=delta,
                            on_hand_after=level.on_hand,
                            available_after=level.available,
                            reason=reason,
                        ),
                        region=warehouse.region,
                    )
                )
            uow.commit()
        # After the row lock is gone. Until then a lowered count may read high in Redis: the
        # gate then lets a reservation through that PostgreSQL's conditional update refuses
        # (and that refusal resyncs the counter), so it never oversells.
        self._adjust_counters({key: delta})
        return self.stock(sku)

    # -- reservations ---------------------------------------------------------------------

    def reserve(
        self, checkout_id: str, lines: Sequence[tuple[str, int]], ship_region: str
    ) -> list[Allocation]:
        """Hold stock for every line, all or nothing; a repeat returns the existing holds."""
        if not checkout_id:
            raise InvalidRequest("a checkout id is required", code="invalid_checkout_id")
        with self._uow() as uow:
            existing = _live(uow.inventory.reservations_of_checkout(checkout_id))
        if existing:
            return [r.allocation() for r in existing]
        try:
            return self.reserve_through(
                checkout_id,
                lines,
                ship_region,
                lambda picks, levels: self._hold_alone(checkout_id, picks, levels),
            )
        except _HeldAlready as held:  # a concurrent call for this checkout won
            return held.allocations

    def reserve_through(
        self,
        checkout_id: str,
        lines: Sequence[tuple[str, int]],
        ship_region: str,
        hold: Callable[[list[Pick], dict[StockKey, StockLevel]], T],
        *,
        levels: Sequence[StockLevel] | None = None,
    ) -> T:
        """Reserve with PostgreSQL's part done by ``hold`` (e.g. in a bigger transaction).

        The Redis gate takes the picks first, with no transaction open; ``hold`` then makes
        them durable with the conditional update, the final word. It raises StockRefused
        when PostgreSQL refuses a pick: Redis is given back and the attempt retried (a lost
        race, or a counter that drifted). Whatever else it raises gives Redis back and
        propagates. ``levels`` (read by the caller already) saves the first read.
        InsufficientStock when the stock is not there.
        """
        wanted = normalise_lines(lines)
        short: Sequence[str] = sorted(wanted)
        trust_postgres = False
        for _ in range(_ATTEMPTS):
            current = self._served(levels if levels is not None else self._levels(wanted))
            levels = None  # a retry reads them again
            try:
                # Redis below PostgreSQL (drift, or holds still in flight): PostgreSQL's
                # conditional update decides alone. Resetting the counter here would count
                # the in-flight units twice.
                live = None if trust_postgres else self._live_counts(current)
                picks = self._allocate(wanted, current, live, ship_region)
                gated = False if trust_postgres else self._gate(picks, current)
            except _Low:
                trust_postgres = True
                continue
            except _Short as lost:
                short = lost.skus
                continue
            held = False
            try:
                result = hold(picks, current)
                held = True
            except StockRefused as refused:
                # Lost a race (or a counter drifted upwards): Redis is given back below and
                # true drift is repaired by the periodic reconcile, after a settled look.
                short = sorted({sku for sku, _ in refused.keys})
                continue
            finally:
                if gated and not held:
                    self._adjust_counters({p.key: p.quantity for p in picks})
            if trust_postgres:  # the counters still owe what PostgreSQL just held
                self._adjust_counters({p.key: -p.quantity for p in picks})
            return result
        raise InsufficientStock(short)

    def reservations_for(
        self,
        checkout_id: str,
        picks: Sequence[Pick],
        levels: Mapping[StockKey, StockLevel],
        now: datetime,
    ) -> list[Reservation]:
        """The held reservations that make ``picks`` durable, expiring after the TTL."""
        return [
            Reservation(
                reservation_id=new_id("rsv"),
                checkout_id=checkout_id,
                sku=pick.sku,
                warehouse_id=pick.warehouse_id,
                region=levels[pick.key].region,
                quantity=pick.quantity,
                expires_at=now + self._ttl,
                created_at=now,
                updated_at=now,
            )
            for pick in picks
        ]

    def give_back(self, units: Mapping[StockKey, int]) -> None:
        """Return units to the Redis counters after PostgreSQL released them (best effort:
        reconcile repairs a counter that missed it)."""
        self._adjust_counters(units)

    def _levels(self, wanted: Collection[str]) -> list[StockLevel]:
        with self._uow() as uow:
            return uow.inventory.stock_of(wanted)

    def _served(self, levels: Sequence[StockLevel]) -> dict[StockKey, StockLevel]:
        return {level.key: level for level in levels if level.region in self._regions}

    def _hold_alone(
        self, checkout_id: str, picks: Sequence[Pick], levels: Mapping[StockKey, StockLevel]
    ) -> list[Allocation]:
        """PostgreSQL's part of :meth:`reserve`, in its own transaction serialised per
        checkout."""
        with self._uow() as uow:
            uow.inventory.lock_checkout(checkout_id)
            existing = _live(uow.inventory.reservations_of_checkout(checkout_id))
            if existing:
                raise _HeldAlready([r.allocation() for r in existing])
            reservations = self._hold(uow, checkout_id, picks, levels)
            uow.commit()
        return [r.allocation() for r in reservations]

    @staticmethod
    def _allocate(
        wanted: Mapping[str, int],
        levels: Mapping[StockKey, StockLevel],
        live: Mapping[StockKey, int] | None,
        ship_region: str,
    ) -> list[Pick]:
        """Picks within both Redis and PostgreSQL; _Low if only a low counter made it short."""
        candidates: dict[str, list[Candidate]] = defaultdict(list)
        for key, level in levels.items():
            # Never trust a counter above PostgreSQL's: a drifted one must not be chosen.
            units = level.available if live is None else min(live[key], level.available)
            candidates[level.sku].append(Candidate(level.warehouse_id, level.region, units))
        try:
            return allocate(wanted, candidates, ship_region)
        except InsufficientStock as short:
            low = sorted(
                key
                for key, level in levels.items()
                if live is not None and level.sku in short.skus and live[key] < level.available
            )
            if not low:
                raise
            truth: dict[str, list[Candidate]] = defaultdict(list)
            for level in levels.values():
                truth[level.sku].append(
                    Candidate(level.warehouse_id, level.region, level.available)
                )
            allocate(wanted, truth, ship_region)  # PostgreSQL agrees it is short: raises
            # PostgreSQL has the units: the counters are below the truth (e.g. a crash between
            # the Lua gate and the commit), which would be a false "out of stock" until the
            # next reconcile.
            raise _Low(low) from None

    def _hold(
        self,
        uow: InventoryUnitOfWork,
        checkout_id: str,
        picks: Sequence[Pick],
        levels: Mapping[StockKey, StockLevel],
    ) -> list[Reservation]:
        refused: list[StockKey] = []
        after: dict[StockKey, StockLevel] = {}
        # Sorted, so concurrent multi-SKU reservations lock rows in one order (no deadlock).
        for pick in sorted(picks, key=lambda p: p.key):
            level = uow.inventory.reserve_units(pick.sku, pick.warehouse_id, pick.quantity)
            if level is None:
                refused.append(pick.key)
            else:
                after[pick.key] = level
        if refused:
            raise StockRefused(refused)
        reservations = self.reservations_for(checkout_id, picks, levels, self._clock())
        uow.inventory.add_reservations(reservations)
        uow.emit(*(reserved_event(r, after[r.key].available) for r in reservations))
        return reservations

    def commit(self, checkout_id: str, order_id: str) -> list[Allocation]:
        """The checkout's held units are sold to ``order_id`` (on hand drops); idempotent."""
        if not order_id:
            raise InvalidRequest("an order id is required", code="invalid_order_id")
        with self._uow() as uow:
            uow.inventory.lock_checkout(checkout_id)
            reservations = uow.inventory.reservations_of_checkout(checkout_id)
            if not reservations:
                raise NotFound(
                    f"no stock is reserved for checkout {checkout_id}",
                    code="reservation_not_found",
                )
            # Released rows are history (the checkout may have reserved again after an expiry).
            live = [r for r in reservations if r.status is not ReservationStatus.RELEASED]
            if not live:
                last = reservations[-1]
                raise ReservationReleased(
                    f"the stock held for checkout {checkout_id} was released "
                    f"({last.release_reason}); reserve again",
                    reason=last.release_reason,
                )
            now = self._clock()
            changed = [r for r in live if r.commit(order_id, now)]
            for reservation in sorted(changed, key=lambda r: r.key):
                level = uow.inventory.commit_units(
                    reservation.sku, reservation.warehouse_id, reservation.quantity
                )
                uow.emit(committed_event(_move(reservation, level.on_hand), order_id))
            uow.inventory.save_reservations(changed)
            uow.commit()
        return [r.allocation() for r in live]

    def release(self, checkout_id: str, reason: str) -> int:
        """Give a checkout's held units back; no-op once released or committed; idempotent.

        Returns how many reservations were released.
        """
        _check_release_reason(reason)
        with self._uow() as uow:
            uow.inventory.lock_checkout(checkout_id)
            reservations = uow.inventory.reservations_of_checkout(checkout_id)
            released, given_back = self._release_all(uow, reservations, reason)
            uow.commit()
        self._adjust_counters(given_back)
        return len(released)

    def release_expired(self, now: datetime | None = None) -> int:
        """Release held reservations past their expiry; safe to run in several processes.

        Returns how many reservations were released.
        """
        now = now or self._clock()
        total = 0
        while True:
            with self._uow() as uow:
                checkouts = uow.inventory.expired_checkouts(now, _SWEEP_BATCH)
                due: list[Reservation] = []
                for checkout_id in checkouts:
                    # Another process (or a commit) works on it: leave it to them.
                    if uow.inventory.try_lock_checkout(checkout_id):
                        due += [
                            r
                            for r in uow.inventory.held_of_checkout_skip_locked(checkout_id)
                            if r.is_expired(now)
                        ]
                released, given_back = self._release_all(uow, due, "expired")
                uow.commit()
            self._adjust_counters(given_back)
            total += len(released)
            if len(checkouts) < _SWEEP_BATCH or not released:
                return total

    def _release_all(
        self, uow: InventoryUnitOfWork, reservations: Sequence[Reservation], reason: str
    ) -> tuple[list[Reservation], dict[StockKey, int]]:
        """Release the held ones; returns them and the units to give back per counter."""
        now = self._clock()
        changed = [r for r in reservations if r.release(reason, now)]
        units: dict[StockKey, int] = defaultdict(int)
        for reservation in changed:
            units[reservation.key] += reservation.quantity
        after = {
            key: uow.inventory.release_units(key[0], key[1], quantity)
            for key, quantity in sorted(units.items())
        }
        uow.inventory.save_reservations(changed)
        for reservation in changed:
            move = _move(reservation, after[reservation.key].available)
            uow.emit(released_event(move, reason, reservation.order_id))
        return changed, dict(units)

    def restock(self, order_id: str, reason: str) -> int:
        """Put an order's sold units back on the shelf (cancel/return); idempotent.

        Returns the number of units restocked by this call.
        """
        recorded = RESTOCK_REASONS.get(reason)
        if recorded is None:
            raise InvalidRequest(
                f"unknown restock reason {reason!r}; use one of {', '.join(RESTOCK_REASONS)}",
                code="invalid_reason",
            )
        units: dict[StockKey, int] = defaultdict(int)
        with self._uow() as uow:
            uow.inventory.lock_order(order_id)
            now = self._clock()
            changed = [r for r in uow.inventory.reservations_of_order(order_id) if r.restock(now)]
            # Units that came back through returns (RMA) are on the shelf or damaged already.
            taken = uow.inventory.returned_units(order_id)
            for reservation in sorted(changed, key=lambda r: r.key):
                skipped = min(taken.get(reservation.key, 0), reservation.quantity)
                taken[reservation.key] = taken.get(reservation.key, 0) - skipped
                quantity = reservation.quantity - skipped
                if quantity == 0:
                    continue
                level = uow.inventory.restock_units(
                    reservation.sku, reservation.warehouse_id, quantity
                )
                units[reservation.key] += quantity
                uow.emit(
                    REGISTRY.new_event(
                        "stock.adjusted",
                        StockAdjusted(
                            sku=reservation.sku,
                            warehouse_id=reservation.warehouse_id,
                            delta=quantity,
                            on_hand_after=level.on_hand,
                            available_after=level.available,
                            reason=recorded,
                            reference_id=order_id,
                        ),
                        region=reservation.region,
                    )
                )
            uow.inventory.save_reservations(changed)
            uow.commit()
        self._adjust_counters(units)
        return sum(units.values())

    def take_back(self, return_id: str, order_id: str, units: Sequence[ReturnedUnits]) -> int:
        """A received return's units come back, idempotent per return: resellable ones on
        the shelf (``stock.adjusted``, return_restock), damaged ones into the stock key's
        damaged bucket (not for sale, so no availability changes and no event).

        Units of an order already restocked whole (cancelled or returned) move nothing, and a
        later whole-order restock skips the units taken back here. Returns the units moved.
        """
        deltas: dict[StockKey, int] = defaultdict(int)
        moved = 0
        merged: dict[StockKey, tuple[int, int]] = {}
        for unit in units:
            check_units(unit.resellable, "resellable", minimum=0)
            check_units(unit.damaged, "damaged", minimum=0)
            before = merged.get((unit.sku, unit.warehouse_id), (0, 0))
            merged[(unit.sku, unit.warehouse_id)] = (
                before[0] + unit.resellable,
                before[1] + unit.damaged,
            )
        with self._uow() as uow:
            uow.inventory.lock_order(order_id)
            restocked = {
                r.key for r in uow.inventory.reservations_of_order(order_id) if r.restocked_at
            }
            for key, (resellable, damaged) in sorted(merged.items()):
                if key in restocked:  # the whole order's units went back already
                    resellable, damaged = 0, 0
                level = uow.inventory.take_back_units(
                    return_id, order_id, key[0], key[1], resellable, damaged
                )
                if level is None:
                    continue
                moved += resellable + damaged
                if resellable:
                    deltas[key] += resellable
                    uow.emit(
                        REGISTRY.new_event(
                            "stock.adjusted",
                            StockAdjusted(
                                sku=key[0],
                                warehouse_id=key[1],
                                delta=resellable,
                                on_hand_after=level.on_hand,
                                available_after=level.available,
                                reason="return_restock",
                                reference_id=return_id,
                            ),
                            region=level.region,
                        )
                    )
            uow.commit()
        self._adjust_counters(deltas)
        return moved

    # -- reconciliation -------------------------------------------------------------------

    def reconcile(self, repair: bool, *, settle_s: float = 0.5) -> DriftReport:
        """Compare every Redis counter with PostgreSQL's on_hand - reserved; optionally repair.

        A difference counts only if a second look ``settle_s`` later sees the very same two
        numbers: a reservation in flight between Redis and PostgreSQL (milliseconds) moves
        one of them, so it is not mistaken for drift and "repaired" into an overcount.
        """
        report = DriftReport()
        after: StockKey | None = None
        while True:
            with self._uow() as uow:
                page = uow.inventory.stock_page(after, _RECONCILE_PAGE)
            if not page:
                return report
            after = page[-1].key
            report.checked += len(page)
            counts = self._counters.read([level.key for level in page])
            suspects = {
                level.key: (count, level.available)
                for level, count in zip(page, counts, strict=True)
                if count != level.available
            }
            if suspects:
                time.sleep(settle_s)
                self._confirm(suspects, report, repair)

    def _confirm(
        self,
        suspects: Mapping[StockKey, tuple[int | None, int]],
        report: DriftReport,
        repair: bool,
    ) -> None:
        with self._uow() as uow:
            levels = uow.inventory.stock_at(list(suspects))
        counts = self._counters.read([level.key for level in levels])
        changes: list[tuple[StockKey, int | None, int]] = []
        for level, count in zip(levels, counts, strict=True):
            if (count, level.available) == suspects[level.key]:
                report.drifts.append(Drift(level.sku, level.warehouse_id, count, level.available))
                changes.append((level.key, count, level.available))
        if repair and changes:
            report.repaired += self._counters.compare_and_set(changes)

    # -- Redis helpers --------------------------------------------------------------------

    def _live_counts(self, levels: Mapping[StockKey, StockLevel]) -> dict[StockKey, int] | None:
        """Redis counters of these rows, priming missing ones; None if Redis is down."""
        keys = list(levels)
        if not keys:
            return {}
        try:
            counts = self._counters.read(keys)
            cold = {k: levels[k].available for k, c in zip(keys, counts, strict=True) if c is None}
            if cold:
                self._counters.prime(cold)
                counts = self._counters.read(keys)
        except StoreUnavailable as exc:
            log.warning("stock counters unavailable, reserving on PostgreSQL alone: %s", exc)
            return None
        return {
            k: (c if c is not None else levels[k].available)
            for k, c in zip(keys, counts, strict=True)
        }

    def _gate(self, picks: Sequence[Pick], levels: Mapping[StockKey, StockLevel]) -> bool:
        """Take the picks from the Redis counters atomically; False if Redis is down."""
        try:
            result: GateResult = self._counters.reserve(picks)
            if result.missing:  # evicted or reset between reading and reserving
                self._counters.prime({key: levels[key].available for key in result.missing})
                result = self._counters.reserve(picks)
        except StoreUnavailable as exc:
            log.warning("stock counters unavailable, reserving on PostgreSQL alone: %s", exc)
            return False
        if not result.ok:
            raise _Short(result.short or tuple(sorted({p.sku for p in picks})))
        return True

    def _adjust_counters(self, deltas: Mapping[StockKey, int]) -> None:
        deltas = {key: delta for key, delta in deltas.items() if delta}
        if not deltas:
            return
        try:
            self._counters.adjust(deltas)
        except StoreUnavailable as exc:  # PostgreSQL is right; reconcile fixes the counter
            log.warning("stock counters not adjusted, run `souk inventory reconcile`: %s", exc)


@dataclass(frozen=True)
class ReturnedUnits:
    """Units of one stock key a return brings back, as inspected."""

    sku: str
    warehouse_id: str
    resellable: int
    damaged: int


class _Short(Exception):
    """The Redis gate found too few units (a concurrent reservation won the race)."""

    def __init__(self, skus: Sequence[str]) -> None:
        super().__init__(f"short: {skus}")
        self.skus = list(skus)


class _HeldAlready(Exception):
    """A concurrent reserve of the same checkout committed first: its holds stand."""

    def __init__(self, allocations: list[Allocation]) -> None:
        super().__init__("held already")
        self.allocations = allocations


def _move(reservation: Reservation, after: int) -> StockMove:
    return StockMove(
        reservation.reservation_id,
        reservation.sku,
        reservation.warehouse_id,
        reservation.region,
        reservation.quantity,
        after,
    )


def _live(reservations: Sequence[Reservation]) -> list[Reservation]:
    """Held or committed reservations (released ones are history)."""
    return [r for r in reservations if r.status is not ReservationStatus.RELEASED]


def _check_release_reason(reason: str) -> None:
    if reason not in RELEASE_REASONS:
        raise InvalidRequest(
            f"unknown release reason {reason!r}; use one of {', '.join(sorted(RELEASE_REASONS))}",
            code="invalid_reason",
        )


def _view(sku: str, levels: Sequence[StockLevel]) -> StockView:
    warehouses = [
        WarehouseStock(
            warehouse_id=level.warehouse_id,
            region=level.region,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
        )
        for level in sorted(levels, key=lambda level: level.warehouse_id)
    ]
    return StockView(
        sku=sku,
        warehouses=warehouses,
        on_hand=sum(w.on_hand for w in warehouses),
        reserved=sum(w.reserved for w in warehouses),
        available=sum(w.available for w in warehouses),
    )
