"""The warehouse allocation strategy and the reservation state machine (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from transactional.inventory.model import (
    Candidate,
    InsufficientStock,
    Pick,
    Reservation,
    ReservationCommitted,
    ReservationReleased,
    ReservationStatus,
    StockBelowReserved,
    StockLevel,
    Warehouse,
    allocate,
    check_warehouse,
    normalise_lines,
)
from transactional.shared.errors import InvalidRequest

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
EU = Candidate("wh_eu_1", "eu", 3)
EU_2 = Candidate("wh_eu_2", "eu", 5)
US = Candidate("wh_us_1", "us", 50)
IN = Candidate("wh_in_1", "in", 50)


def test_nearest_warehouse_with_the_whole_quantity_wins() -> None:
    assert allocate({"A": 2}, {"A": [US, EU, IN]}, "eu") == [Pick("A", "wh_eu_1", 2)]
    assert allocate({"A": 2}, {"A": [US, EU, IN]}, "us") == [Pick("A", "wh_us_1", 2)]
    # The US and India are equally far from Europe and equally full: the id decides.
    assert allocate({"A": 2}, {"A": [US, IN]}, "eu") == [Pick("A", "wh_in_1", 2)]
    assert allocate({"A": 2}, {"A": [US, IN]}, "in") == [Pick("A", "wh_in_1", 2)]


def test_among_equally_near_warehouses_the_fuller_one_wins() -> None:
    assert allocate({"A": 2}, {"A": [EU, EU_2]}, "eu") == [Pick("A", "wh_eu_2", 2)]


def test_a_farther_warehouse_with_everything_beats_splitting() -> None:
    assert allocate({"A": 10}, {"A": [EU, EU_2, US]}, "eu") == [Pick("A", "wh_us_1", 10)]


def test_split_nearest_first_when_no_warehouse_has_everything() -> None:
    small_us = Candidate("wh_us_1", "us", 4)
    picks = allocate({"A": 10}, {"A": [small_us, EU, EU_2]}, "eu")
    assert picks == [Pick("A", "wh_eu_2", 5), Pick("A", "wh_eu_1", 3), Pick("A", "wh_us_1", 2)]
    assert sum(p.quantity for p in picks) == 10


def test_insufficient_names_every_short_sku_and_picks_nothing() -> None:
    with pytest.raises(InsufficientStock) as raised:
        allocate(
            {"A": 1, "B": 9, "C": 1, "D": 1},
            {"A": [EU], "B": [EU, EU_2], "C": [Candidate("wh_eu_1", "eu", 0)]},
            "eu",
        )
    assert raised.value.skus == ["B", "C", "D"]
    assert raised.value.code == "insufficient_stock"
    assert raised.value.extra == {"skus": ["B", "C", "D"]}


def test_unknown_ship_region_still_allocates() -> None:
    assert allocate({"A": 1}, {"A": [EU]}, "mars") == [Pick("A", "wh_eu_1", 1)]


def test_lines_are_merged_and_validated() -> None:
    assert normalise_lines([("A", 1), ("B", 2), ("A", 3)]) == {"A": 4, "B": 2}
    for bad in ([], [("A", 0)], [("A", -1)], [("", 1)], [("A", True)], [("A", 10**10)]):
        with pytest.raises(InvalidRequest):
            normalise_lines(bad)  # type: ignore[arg-type]


def reservation(**overrides: object) -> Reservation:
    fields: dict[str, object] = {
        "reservation_id": "rsv_1",
        "checkout_id": "chk_1",
        "sku": "A",
        "warehouse_id": "wh_eu_1",
        "region": "eu",
        "quantity": 2,
        "expires_at": NOW + timedelta(minutes=15),
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return Reservation(**fields)  # type: ignore[arg-type]


def test_held_reservation_commits_once_and_only_to_one_order() -> None:
    held = reservation()
    assert held.commit("ord_1", NOW) is True
    assert (held.status, held.order_id) == (ReservationStatus.COMMITTED, "ord_1")
    assert held.commit("ord_1", NOW) is False  # idempotent
    with pytest.raises(ReservationCommitted):
        held.commit("ord_2", NOW)
    assert held.release("expired", NOW) is False  # a sale is not undone by a release


def test_released_reservation_cannot_be_committed() -> None:
    held = reservation()
    assert held.release("payment_failed", NOW) is True
    assert held.release("expired", NOW) is False
    assert held.release_reason == "payment_failed"
    with pytest.raises(ReservationReleased):
        held.commit("ord_1", NOW)


def test_restock_only_committed_and_only_once() -> None:
    held = reservation()
    assert held.restock(NOW) is False
    held.commit("ord_1", NOW)
    assert held.restock(NOW) is True
    assert held.restock(NOW) is False


def test_expiry() -> None:
    held = reservation()
    assert not held.is_expired(NOW)
    assert held.is_expired(NOW + timedelta(minutes=15))
    held.commit("ord_1", NOW)
    assert not held.is_expired(NOW + timedelta(days=1))


def test_on_hand_never_below_reserved_or_negative() -> None:
    level = StockLevel("A", "wh_eu_1", "eu", on_hand=10, reserved=4)
    assert level.set_on_hand(12) == 2 and level.available == 8
    assert level.set_on_hand(4) == -8 and level.available == 0
    with pytest.raises(StockBelowReserved) as raised:
        level.set_on_hand(3)
    assert raised.value.code == "on_hand_below_reserved"
    with pytest.raises(InvalidRequest):
        level.set_on_hand(-1)


def test_warehouse_checks() -> None:
    regions = ["eu", "us", "in"]
    check_warehouse(Warehouse("wh_eu_9", "eu", "FR", "Paris"), regions)
    for bad, code in [
        (Warehouse("WH EU", "eu", "FR", "x"), "invalid_warehouse_id"),
        (Warehouse("wh_x", "mars", "FR", "x"), "unknown_region"),
        (Warehouse("wh_x", "eu", "US", "x"), "country_not_in_region"),
    ]:
        with pytest.raises(InvalidRequest) as raised:
            check_warehouse(bad, regions)
        assert raised.value.code == code
