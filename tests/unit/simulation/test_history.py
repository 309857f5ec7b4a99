"""The shoppers' imported history: valid events of the registered accounts, over the span."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from schemas.registry import REGISTRY
from souk.simulation import ShopperModel, SimulationConfig
from souk.simulation.history import history_events
from tests.unit.test_simulate import catalog

END = datetime(2026, 12, 1, tzinfo=UTC)


def _events(customer_ids: dict[int, str], sessions: int = 200) -> list:
    model = ShopperModel(catalog(60), SimulationConfig(users=40, seed=3, fraud_share=0.1))
    return list(
        history_events(model, customer_ids, sessions=sessions, end=END, span=timedelta(days=14))
    )


def test_history_is_valid_events_of_registered_shoppers_within_the_span() -> None:
    ids = {index: f"cus_{index:03d}" for index in range(0, 40, 2)}  # half registered
    events = _events(ids)
    sessions = {e.payload["session_id"] for e in events}
    assert len(sessions) == 200
    assert Counter(e.event_type for e in events).keys() == {"product.viewed", "cart.item_added"}
    for event in events:
        REGISTRY.validate(event)
        assert event.payload["customer_id"] in ids.values()
        assert END - timedelta(days=14) <= event.occurred_at < END + timedelta(hours=1)


def test_history_follows_the_shoppers_tastes_and_is_the_same_every_time() -> None:
    model = ShopperModel(catalog(60), SimulationConfig(users=40, seed=3, fraud_share=0.1))
    ids = {index: f"cus_{index:03d}" for index in range(40)}
    events = _events(ids)
    assert [e.event_id for e in events] == [e.event_id for e in _events(ids)]
    by_id = {v: k for k, v in ids.items()}
    category = {p.product_id: p.category_id for p in model.catalog.products}
    views = [e for e in events if e.event_type == "product.viewed"]
    liked = sum(
        category[e.payload["product_id"]]
        in model.favourite_categories(by_id[e.payload["customer_id"]])
        for e in views
    )
    assert liked / len(views) > 0.75


def test_no_registered_shopper_means_no_history() -> None:
    assert _events({}) == []


def test_the_same_plans_for_other_accounts_are_other_events() -> None:
    first = _events({index: f"cus_{index:03d}" for index in range(40)})
    second = _events({index: f"cus_x{index:03d}" for index in range(40)})
    assert not {e.event_id for e in first} & {e.event_id for e in second}
