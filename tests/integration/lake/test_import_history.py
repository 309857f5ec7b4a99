"""Importing events that never crossed the bus (a shop's earlier history) into bronze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.archive import IMPORTED, import_envelopes
from jobs.lake.tables import bronze_table
from souk.settings import Settings
from souk.simulation import ShopperModel, SimulationConfig
from souk.simulation.history import history_events
from tests.integration.lake.conftest import lake_store
from tests.unit.test_simulate import catalog

pytestmark = pytest.mark.integration


def test_imported_history_lands_in_bronze_once_even_when_imported_twice(
    lake_settings: Settings,
) -> None:
    store = lake_store(lake_settings)
    model = ShopperModel(catalog(40), SimulationConfig(users=10, seed=2, fraud_share=0.0))
    ids = {index: f"cus_{index:02d}" for index in range(10)}
    end = datetime(2026, 11, 30, tzinfo=UTC)

    def events() -> list:
        return list(history_events(model, ids, sessions=50, end=end, span=timedelta(days=7)))

    expected = events()
    assert import_envelopes(store, expected) == len(expected)
    assert import_envelopes(store, events()) == 0  # a re-run adds nothing
    behaviour = store.read(bronze_table("behaviour")).to_pylist()
    carts = store.read(bronze_table("carts")).to_pylist()
    rows = behaviour + carts
    assert sorted(r["event_id"] for r in rows) == sorted(str(e.event_id) for e in expected)
    assert {r["kafka_partition"] for r in rows} == {IMPORTED}
    assert {r["topic"] for r in behaviour} <= {f"{r}.behaviour.v1" for r in ("eu", "us", "in")}
    assert {r["topic"] for r in carts} <= {f"{r}.carts.v1" for r in ("eu", "us", "in")}
    assert all(r["event_date"] == r["occurred_at"].date() for r in rows)
