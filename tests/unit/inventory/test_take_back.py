"""Returned units (RMA): resellable ones back on sale, damaged ones in the damaged bucket,
once per return; a later whole-order restock does not put them back a second time."""

from __future__ import annotations

from tests.unit.inventory.test_inventory_service import make
from transactional.inventory.service import ReturnedUnits

KEY = ("A", "wh_eu_1")


def test_a_return_moves_its_units_once_and_only_resellable_ones_go_on_sale() -> None:
    service, uow, counters, _ = make({KEY: 5})
    service.reserve("chk_1", [("A", 3)], "eu")
    service.commit("chk_1", "ord_1")
    assert uow.inventory.stock[KEY] == [2, 0] and counters.values[KEY] == 2
    units = [ReturnedUnits("A", "wh_eu_1", resellable=1, damaged=1)]
    assert service.take_back("ret_1", "ord_1", units) == 2
    assert service.take_back("ret_1", "ord_1", units) == 0  # a retry moves nothing
    assert uow.inventory.stock[KEY] == [3, 0]  # the damaged unit is not on hand
    assert uow.inventory.damaged[KEY] == 1
    assert counters.values[KEY] == 3  # Redis agrees with PostgreSQL's available
    event = uow.committed[-1]
    assert event.event_type == "stock.adjusted"
    assert event.payload["reason"] == "return_restock" and event.payload["delta"] == 1
    assert event.payload["reference_id"] == "ret_1" and event.payload["available_after"] == 3


def test_a_damaged_only_return_changes_no_availability_and_emits_no_stock_event() -> None:
    service, uow, counters, _ = make({KEY: 5})
    service.reserve("chk_1", [("A", 1)], "eu")
    service.commit("chk_1", "ord_1")
    committed = len(uow.committed)
    assert service.take_back("ret_1", "ord_1", [ReturnedUnits("A", "wh_eu_1", 0, 1)]) == 1
    assert uow.inventory.stock[KEY] == [4, 0] and counters.values[KEY] == 4
    assert uow.inventory.damaged[KEY] == 1 and len(uow.committed) == committed


def test_the_whole_order_restock_skips_units_returns_took_back() -> None:
    service, uow, counters, _ = make({KEY: 5})
    service.reserve("chk_1", [("A", 3)], "eu")
    service.commit("chk_1", "ord_1")
    service.take_back("ret_1", "ord_1", [ReturnedUnits("A", "wh_eu_1", 1, 1)])
    assert service.restock("ord_1", "return") == 1  # the third unit only
    assert uow.inventory.stock[KEY] == [4, 0] and counters.values[KEY] == 4
    assert uow.committed[-1].payload["delta"] == 1


def test_units_of_an_order_restocked_whole_already_move_nothing() -> None:
    service, uow, _, _ = make({KEY: 5})
    service.reserve("chk_1", [("A", 2)], "eu")
    service.commit("chk_1", "ord_1")
    assert service.restock("ord_1", "cancel") == 2
    assert service.take_back("ret_1", "ord_1", [ReturnedUnits("A", "wh_eu_1", 1, 0)]) == 0
    assert uow.inventory.stock[KEY] == [5, 0] and uow.inventory.damaged.get(KEY, 0) == 0
