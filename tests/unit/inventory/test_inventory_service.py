"""Inventory use cases on in-memory fakes: reservations, counting, expiry, reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.inventory.fakes import FakeCounters, FakeInventoryUow, StaticSellers, StaticSkus
from transactional.inventory.model import (
    InsufficientStock,
    ReservationReleased,
    ReservationStatus,
    StockBelowReserved,
    Warehouse,
)
from transactional.inventory.service import InventoryService
from transactional.shared.auth import ADMIN, Principal
from transactional.shared.errors import Forbidden, InvalidRequest, NotFound

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
TTL = 900
ADMIN_USER = Principal("cus_admin", "eu", frozenset({ADMIN}))
SELLER_USER = Principal("cus_seller", "eu")
OTHER_USER = Principal("cus_other", "eu")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def make(
    stock: dict[tuple[str, str], int] | None = None,
) -> tuple[InventoryService, FakeInventoryUow, FakeCounters, Clock]:
    uow = FakeInventoryUow()
    for (sku, warehouse_id), on_hand in (stock or {}).items():
        uow.inventory.put(sku, warehouse_id, on_hand)
    counters = FakeCounters(in_transaction=lambda: uow.open)
    clock = Clock()
    service = InventoryService(
        lambda: uow,
        counters,
        skus=StaticSkus({"A": "sel_1", "B": "sel_1", "C": "sel_2"}),
        sellers=StaticSellers({"cus_seller": "sel_1", "cus_other": "sel_2"}),
        regions=["eu", "us", "in"],
        reservation_ttl_s=TTL,
        clock=clock,
    )
    return service, uow, counters, clock


def reserved(uow: FakeInventoryUow, key: tuple[str, str]) -> int:
    return uow.inventory.stock[key][1]


# -- reserve ---------------------------------------------------------------------------


def test_reserve_holds_units_in_postgres_and_redis_and_emits_events() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5, ("B", "wh_us_1"): 3})
    allocations = service.reserve("chk_1", [("A", 2), ("B", 1), ("A", 1)], "eu")
    assert sorted((a.sku, a.warehouse_id, a.quantity) for a in allocations) == [
        ("A", "wh_eu_1", 3),
        ("B", "wh_us_1", 1),
    ]
    assert uow.inventory.stock == {("A", "wh_eu_1"): [5, 3], ("B", "wh_us_1"): [3, 1]}
    assert counters.values == {("A", "wh_eu_1"): 2, ("B", "wh_us_1"): 2}  # primed, then taken
    assert uow.event_types() == ["stock.reserved", "stock.reserved"]
    payloads = {e.payload["sku"]: e.payload for e in uow.committed}
    assert payloads["A"]["available_after"] == 2
    assert payloads["A"]["expires_at"] == "2026-11-25T12:15:00Z"  # now + TTL
    assert {e.region for e in uow.committed} == {"eu", "us"}
    rows = list(uow.inventory.rows.values())
    assert all(r.status is ReservationStatus.HELD and r.checkout_id == "chk_1" for r in rows)


def test_reserve_is_idempotent_per_checkout() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    first = service.reserve("chk_1", [("A", 2)], "eu")
    again = service.reserve("chk_1", [("A", 2)], "eu")
    assert again == first
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 2]
    assert counters.values[("A", "wh_eu_1")] == 3
    assert uow.event_types() == ["stock.reserved"]


def test_one_short_sku_reserves_nothing_for_any() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 1})
    with pytest.raises(InsufficientStock) as raised:
        service.reserve("chk_1", [("A", 2), ("B", 2), ("Z", 1)], "eu")
    assert raised.value.extra == {"skus": ["B", "Z"]}
    assert reserved(uow, ("A", "wh_eu_1")) == 0
    assert counters.values == {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 1}
    assert uow.committed == [] and uow.inventory.rows == {}


def test_redis_gate_short_after_a_race_reserves_nothing() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5})
    counters.values = {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5}
    real_read = counters.read

    def stale_read(keys: object) -> list[int | None]:
        values = real_read(keys)  # type: ignore[arg-type]
        # Another checkout wins all of B right after we looked, in Redis and PostgreSQL.
        counters.values[("B", "wh_eu_1")] = 0
        uow.inventory.stock[("B", "wh_eu_1")] = [5, 5]
        return values

    counters.read = stale_read  # type: ignore[method-assign]
    with pytest.raises(InsufficientStock) as raised:
        service.reserve("chk_1", [("A", 2), ("B", 2)], "eu")
    assert raised.value.skus == ["B"]
    assert counters.values[("A", "wh_eu_1")] == 5  # the Lua gate took nothing
    assert reserved(uow, ("A", "wh_eu_1")) == 0


def test_redis_above_postgres_never_oversells() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 2})
    counters.values[("A", "wh_eu_1")] = 10  # drifted upwards
    with pytest.raises(InsufficientStock):
        service.reserve("chk_1", [("A", 5)], "eu")
    assert reserved(uow, ("A", "wh_eu_1")) == 0
    service.reserve("chk_2", [("A", 2)], "eu")
    assert uow.inventory.stock[("A", "wh_eu_1")] == [2, 2]


def test_postgres_refusal_gives_redis_back_and_resyncs_the_counter() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5})
    counters.values = {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5}
    uow.inventory.refuse.add(("B", "wh_eu_1"))  # e.g. a row changed behind Redis's back
    with pytest.raises(InsufficientStock) as raised:
        service.reserve("chk_1", [("A", 1), ("B", 1)], "eu")
    assert raised.value.skus == ["B"]
    assert uow.inventory.stock == {("A", "wh_eu_1"): [5, 0], ("B", "wh_eu_1"): [5, 0]}
    assert counters.values == {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5}
    assert uow.inventory.rows == {} and uow.committed == []


def test_allocation_never_trusts_a_counter_above_postgres() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 3, ("A", "wh_eu_2"): 3})
    uow.inventory.put("A", "wh_eu_1", 3, reserved=3)  # PG: eu_1 is fully held
    counters.values = {("A", "wh_eu_1"): 3, ("A", "wh_eu_2"): 3}  # Redis missed the holds
    [allocation] = service.reserve("chk_1", [("A", 2)], "eu")
    assert allocation.warehouse_id == "wh_eu_2"


def test_a_refusal_that_was_a_race_is_retried() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 3})
    counters.values = {("A", "wh_eu_1"): 3}
    uow.inventory.refuse_once.add(("A", "wh_eu_1"))
    [allocation] = service.reserve("chk_1", [("A", 2)], "eu")
    assert allocation.quantity == 2 and counters.reserve_calls == 2
    assert uow.inventory.stock[("A", "wh_eu_1")] == [3, 2]
    assert counters.values[("A", "wh_eu_1")] == 1


def test_a_counter_below_postgres_lets_postgres_decide_and_reconcile_repairs_it() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    counters.values[("A", "wh_eu_1")] = 0  # lost units: a crash between the gate and the commit
    [allocation] = service.reserve("chk_1", [("A", 2)], "eu")
    assert allocation.quantity == 2
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 2]
    # Not reset on the hot path (holds in flight look the same); still 5 low, then repaired.
    assert counters.values[("A", "wh_eu_1")] == -2
    service.reconcile(True, settle_s=0)
    assert counters.values[("A", "wh_eu_1")] == 3


def test_a_low_counter_does_not_steer_the_warehouse_choice() -> None:
    service, _, counters, _ = make({("A", "wh_eu_1"): 1, ("A", "wh_eu_2"): 4})
    counters.values = {("A", "wh_eu_1"): 1, ("A", "wh_eu_2"): 1}  # eu_2 lost 3 units
    allocations = service.reserve("chk_1", [("A", 3)], "eu")
    assert [(a.warehouse_id, a.quantity) for a in allocations] == [("wh_eu_2", 3)]
    assert counters.values == {("A", "wh_eu_1"): 1, ("A", "wh_eu_2"): -2}
    service.reconcile(True, settle_s=0)
    assert counters.values == {("A", "wh_eu_1"): 1, ("A", "wh_eu_2"): 1}


def test_a_shortfall_postgres_confirms_stays_a_shortfall() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 2, ("B", "wh_eu_1"): 5})
    counters.values = {("A", "wh_eu_1"): 2, ("B", "wh_eu_1"): 0}  # B low, but A truly short
    with pytest.raises(InsufficientStock) as raised:
        service.reserve("chk_1", [("A", 3), ("B", 1)], "eu")
    assert raised.value.skus == ["A"]
    assert uow.inventory.rows == {} and uow.committed == []


def test_redis_is_never_called_inside_a_database_transaction() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    calls: list[bool] = []
    real_reserve, real_adjust = counters.reserve, counters.adjust

    def reserve(picks: object) -> object:
        calls.append(uow.open)
        return real_reserve(picks)  # type: ignore[arg-type]

    def adjust(deltas: object) -> None:
        calls.append(uow.open)
        real_adjust(deltas)  # type: ignore[arg-type]

    counters.reserve = reserve  # type: ignore[assignment]
    counters.adjust = adjust  # type: ignore[method-assign]
    service.reserve("chk_1", [("A", 2)], "eu")
    service.set_on_hand("A", "wh_eu_1", 3, actor=ADMIN_USER)
    service.release("chk_1", "payment_failed")
    assert calls == [False, False, False]


def test_a_concurrent_reserve_of_the_same_checkout_gives_its_counter_units_back() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    real_reserve = counters.reserve

    def reserve_then_lose(picks: object) -> object:
        result = real_reserve(picks)  # type: ignore[arg-type]
        counters.reserve = real_reserve  # type: ignore[method-assign]
        service.reserve("chk_1", [("A", 2)], "eu")  # the other call wins the checkout lock
        return result

    counters.reserve = reserve_then_lose  # type: ignore[method-assign]
    first = service.reserve("chk_1", [("A", 2)], "eu")
    assert [r.reservation_id for r in uow.inventory.rows.values()] == [first[0].reservation_id]
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 2]
    assert counters.values[("A", "wh_eu_1")] == 3


def test_cold_counters_are_primed_from_postgres() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 4})
    uow.inventory.put("A", "wh_eu_1", 4, reserved=1)
    service.reserve("chk_1", [("A", 3)], "eu")
    assert counters.values == {("A", "wh_eu_1"): 0}
    assert uow.inventory.stock[("A", "wh_eu_1")] == [4, 4]


def test_reserve_works_on_postgres_alone_when_redis_is_down() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 2})
    counters.down = True
    service.reserve("chk_1", [("A", 2)], "eu")
    with pytest.raises(InsufficientStock):
        service.reserve("chk_2", [("A", 1)], "eu")
    assert service.release("chk_1", "payment_failed") == 1
    assert uow.inventory.stock[("A", "wh_eu_1")] == [2, 0]


def test_reserve_splits_across_warehouses_nearest_first() -> None:
    service, _, _, _ = make({("A", "wh_eu_1"): 2, ("A", "wh_us_1"): 5, ("A", "wh_in_1"): 1})
    allocations = service.reserve("chk_1", [("A", 7)], "us")
    assert [(a.warehouse_id, a.quantity) for a in allocations] == [("wh_us_1", 5), ("wh_eu_1", 2)]


def test_reserve_rejects_bad_input() -> None:
    service, _, _, _ = make({("A", "wh_eu_1"): 2})
    for checkout_id, lines in [("", [("A", 1)]), ("c", []), ("c", [("A", 0)]), ("c", [("A", -2)])]:
        with pytest.raises(InvalidRequest):
            service.reserve(checkout_id, lines, "eu")


def test_reserve_again_after_release_holds_anew() -> None:
    service, uow, _, _ = make({("A", "wh_eu_1"): 2})
    first = service.reserve("chk_1", [("A", 1)], "eu")
    service.release("chk_1", "expired")
    second = service.reserve("chk_1", [("A", 2)], "eu")
    assert second[0].reservation_id != first[0].reservation_id
    assert uow.inventory.stock[("A", "wh_eu_1")] == [2, 2]


# -- commit / release / restock --------------------------------------------------------


def test_commit_sells_units_once() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    service.reserve("chk_1", [("A", 2)], "eu")
    committed = service.commit("chk_1", "ord_1")
    assert [(a.sku, a.quantity) for a in committed] == [("A", 2)]
    assert service.commit("chk_1", "ord_1") == committed
    assert uow.inventory.stock[("A", "wh_eu_1")] == [3, 0]
    assert counters.values[("A", "wh_eu_1")] == 3  # a sale leaves availability as it was
    assert uow.event_types() == ["stock.reserved", "stock.committed"]
    assert uow.committed[-1].payload["on_hand_after"] == 3
    assert service.release("chk_1", "payment_failed") == 0  # no-op once sold
    assert uow.inventory.stock[("A", "wh_eu_1")] == [3, 0]


def test_commit_refuses_unknown_or_released_checkouts() -> None:
    service, _, _, _ = make({("A", "wh_eu_1"): 5})
    with pytest.raises(NotFound):
        service.commit("chk_none", "ord_1")
    service.reserve("chk_1", [("A", 2)], "eu")
    service.release("chk_1", "checkout_abandoned")
    with pytest.raises(ReservationReleased):
        service.commit("chk_1", "ord_1")


def test_release_gives_units_back_once() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    service.reserve("chk_1", [("A", 2)], "eu")
    assert service.release("chk_1", "payment_failed") == 1
    assert service.release("chk_1", "payment_failed") == 0
    assert service.release("chk_unknown", "manual") == 0
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 0]
    assert counters.values[("A", "wh_eu_1")] == 5
    assert uow.event_types() == ["stock.reserved", "stock.released"]
    assert uow.committed[-1].payload["reason"] == "payment_failed"
    with pytest.raises(InvalidRequest):
        service.release("chk_1", "because")


def test_restock_puts_sold_units_back_once() -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    service.reserve("chk_1", [("A", 2)], "eu")
    service.commit("chk_1", "ord_1")
    assert service.restock("ord_1", "cancel") == 2
    assert service.restock("ord_1", "cancel") == 0
    assert service.restock("ord_unknown", "return") == 0
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 0]
    assert counters.values[("A", "wh_eu_1")] == 5
    event = uow.committed[-1]
    assert event.event_type == "stock.adjusted"
    assert event.payload["reason"] == "order_cancelled"
    assert event.payload["reference_id"] == "ord_1" and event.payload["delta"] == 2
    with pytest.raises(InvalidRequest):
        service.restock("ord_1", "whatever")


# -- expiry ----------------------------------------------------------------------------


def test_expired_reservations_are_released_and_others_kept() -> None:
    service, uow, counters, clock = make({("A", "wh_eu_1"): 5})
    service.reserve("chk_old", [("A", 2)], "eu")
    clock.now = NOW + timedelta(seconds=TTL // 2)
    service.reserve("chk_new", [("A", 1)], "eu")
    service.reserve("chk_sold", [("A", 1)], "eu")
    service.commit("chk_sold", "ord_1")
    assert service.release_expired(NOW + timedelta(seconds=TTL)) == 1
    assert uow.inventory.stock[("A", "wh_eu_1")] == [4, 1]
    assert counters.values[("A", "wh_eu_1")] == 3
    assert uow.committed[-1].payload["reason"] == "expired"
    assert service.release_expired(NOW + timedelta(seconds=TTL)) == 0
    assert service.release_expired(NOW + timedelta(days=1)) == 1


def test_sweeper_skips_checkouts_another_process_is_working_on() -> None:
    service, uow, _, _ = make({("A", "wh_eu_1"): 5})
    service.reserve("chk_1", [("A", 2)], "eu")
    uow.inventory.busy.add("chk_1")
    assert service.release_expired(NOW + timedelta(days=1)) == 0
    uow.inventory.busy.clear()
    assert service.release_expired(NOW + timedelta(days=1)) == 1


# -- counting --------------------------------------------------------------------------


def test_admin_and_owning_seller_may_set_on_hand() -> None:
    service, uow, counters, _ = make()
    view = service.set_on_hand("A", "wh_eu_1", 7, actor=ADMIN_USER, reason="receipt")
    assert (view.on_hand, view.reserved, view.available) == (7, 0, 7)
    assert [(w.warehouse_id, w.region) for w in view.warehouses] == [("wh_eu_1", "eu")]
    counters.values[("A", "wh_eu_1")] = 7
    view = service.set_on_hand("A", "wh_eu_1", 4, actor=SELLER_USER)
    assert view.available == 4 and counters.values[("A", "wh_eu_1")] == 4
    assert uow.event_types() == ["stock.adjusted", "stock.adjusted"]
    assert [e.payload["delta"] for e in uow.committed] == [7, -3]
    assert [e.payload["reason"] for e in uow.committed] == ["receipt", "cycle_count"]
    service.set_on_hand("A", "wh_eu_1", 4, actor=SELLER_USER)  # no change, no event
    assert len(uow.committed) == 2


def test_set_on_hand_refusals() -> None:
    service, uow, _, _ = make({("A", "wh_eu_1"): 5})
    with pytest.raises(Forbidden):
        service.set_on_hand("A", "wh_eu_1", 1, actor=OTHER_USER)
    with pytest.raises(NotFound) as unknown_sku:
        service.set_on_hand("Z", "wh_eu_1", 1, actor=ADMIN_USER)
    assert unknown_sku.value.code == "sku_not_found"
    with pytest.raises(NotFound) as unknown_warehouse:
        service.set_on_hand("A", "wh_nowhere", 1, actor=ADMIN_USER)
    assert unknown_warehouse.value.code == "warehouse_not_found"
    service.reserve("chk_1", [("A", 3)], "eu")
    with pytest.raises(StockBelowReserved):
        service.set_on_hand("A", "wh_eu_1", 2, actor=ADMIN_USER)
    with pytest.raises(InvalidRequest):
        service.set_on_hand("A", "wh_eu_1", -1, actor=ADMIN_USER)
    assert uow.inventory.stock[("A", "wh_eu_1")] == [5, 3]


def test_zero_on_an_unstocked_warehouse_changes_nothing() -> None:
    service, uow, _, _ = make()
    view = service.set_on_hand("A", "wh_eu_1", 0)
    assert view.warehouses == [] and uow.inventory.stock == {} and uow.committed == []


def test_stock_and_availability() -> None:
    service, _, _, _ = make({("A", "wh_eu_1"): 5, ("A", "wh_us_1"): 2})
    service.reserve("chk_1", [("A", 6)], "eu")
    view = service.stock("A")
    assert (view.on_hand, view.reserved, view.available) == (7, 6, 1)
    assert service.availability(["A", "B", "A"]) == {"A": 1, "B": 0}
    assert service.stock("B").warehouses == []  # in the catalog, never stocked
    with pytest.raises(NotFound):
        service.stock("nope")


def test_warehouses_are_admin_managed() -> None:
    service, _, _, _ = make()
    new = Warehouse("wh_eu_9", "eu", "ES", "Madrid")
    with pytest.raises(Forbidden):
        service.put_warehouse(SELLER_USER, new)
    assert service.put_warehouse(ADMIN_USER, new) == new
    assert new in service.warehouses()
    with pytest.raises(InvalidRequest):
        service.put_warehouse(ADMIN_USER, Warehouse("wh_x", "mars", "ES", "x"))


# -- reconciliation --------------------------------------------------------------------


def test_reconcile_reports_and_repairs_drift() -> None:
    service, _, counters, _ = make({("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5, ("C", "wh_eu_1"): 5})
    counters.values = {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 9}  # B drifted, C missing
    report = service.reconcile(repair=False, settle_s=0)
    assert (report.checked, report.drifted, report.missing, report.repaired) == (3, 1, 1, 0)
    assert counters.values[("B", "wh_eu_1")] == 9
    report = service.reconcile(repair=True, settle_s=0)
    assert report.repaired == 2
    assert counters.values == {("A", "wh_eu_1"): 5, ("B", "wh_eu_1"): 5, ("C", "wh_eu_1"): 5}
    assert service.reconcile(repair=False, settle_s=0).drifts == []


def test_reconcile_leaves_a_hold_in_flight_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    service, uow, counters, _ = make({("A", "wh_eu_1"): 5})
    counters.values = {("A", "wh_eu_1"): 3}  # a checkout took 2 in Redis, PostgreSQL not yet

    def commit_lands(seconds: float) -> None:  # ...and commits while reconcile settles
        uow.inventory.stock[("A", "wh_eu_1")] = [5, 2]

    monkeypatch.setattr("transactional.inventory.service.time.sleep", commit_lands)
    report = service.reconcile(repair=True)
    # Repairing from the first look would have set 5: an overcount of the units in flight.
    assert (report.drifted, report.repaired) == (0, 0)
    assert counters.values == {("A", "wh_eu_1"): 3}


def test_warehouses_of_unserved_regions_are_never_stocked_or_allocated() -> None:
    service, uow, _, _ = make({("A", "wh_eu_1"): 1})
    uow.inventory.save_warehouse(Warehouse("wh_xx_1", "xx", "DE", "Elsewhere"))
    uow.inventory.put("A", "wh_xx_1", 50)
    with pytest.raises(InvalidRequest) as raised:
        service.set_on_hand("A", "wh_xx_1", 3, actor=ADMIN_USER)
    assert raised.value.code == "warehouse_not_served"
    with pytest.raises(InsufficientStock):
        service.reserve("chk_1", [("A", 2)], "eu")
    assert [a.warehouse_id for a in service.reserve("chk_2", [("A", 1)], "eu")] == ["wh_eu_1"]
