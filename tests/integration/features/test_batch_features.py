"""Batch feature views end to end: gold Delta tables → snapshots → Feast → the stack's Valkey.

Real Delta tables under tmp_path, real Feast, the real Redis of a private stack (started once
for the module). Entity ids are fresh per test, so values never meet another test's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from feast import FeatureStore
from rich.console import Console
from typer.testing import CliRunner

from features.batch import BATCH_TTL, BATCH_VIEWS, snapshot_gold, snapshot_table
from features.jobs import load_online, materialize
from features.store import apply, feature_store
from jobs.lake import LakeError, table_store
from souk import features_cli
from souk.cli import app as souk_app
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.homes import temporary_home

pytestmark = pytest.mark.integration

TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """The Redis (Valkey) of a private local stack, as the streaming tests start it."""
    stack = Stack(Settings(_env_file=None, home=temporary_home("souk-feat-")))  # type: ignore[call-arg]
    yield stack.up_component("redis")
    stack.down()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """A private SOUK_HOME (lake, feature repository) on the module's Redis."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path / "home", redis_url=redis_url, lake_uri=None
    )


@pytest.fixture
def ids() -> dict[str, list[str]]:
    """Fresh customer, product and seller ids (two each)."""
    tag = secrets.token_hex(4)
    return {kind: [f"{kind}_{tag}_{n}" for n in range(2)] for kind in ("cus", "prd", "sel")}


def write_gold(settings: Settings, ids: dict[str, list[str]], scale: int = 1) -> datetime:
    """The gold tables as jobs/gold.py writes them (money per currency); returns last_order_at.

    Customer 0 and seller 0 have rows in two currencies; counts grow with ``scale``.
    """
    lake = table_store(settings)
    last = datetime.now(UTC) - timedelta(days=3)
    cus, sel = ids["cus"], ids["sel"]
    lake.overwrite(
        "gold/customer_stats",
        pa.table(
            {
                "customer_id": [cus[0], cus[0], cus[1]],
                "currency": ["USD", "EUR", "EUR"],
                "orders": [1 * scale, 3 * scale, 1 * scale],
                "spend_minor": [4_000, 12_500 * scale, 999 * scale],
                "first_order_at": pa.array([last - timedelta(days=30)] * 3, TS),
                "last_order_at": pa.array(
                    [last - timedelta(days=10), last, last - timedelta(days=1)], TS
                ),
                "recency_days": pa.array([13, 3, 4], pa.int32()),
            }
        ),
    )
    lake.overwrite(
        "gold/item_stats",
        pa.table(
            {
                "product_id": ids["prd"],
                "views": [200 * scale, 10],
                "cart_adds": [20 * scale, 1],
                "purchases": [8 * scale, 0],
                "units": [9 * scale, 0],
                "conversion": [0.04 * scale, 0.0],
            }
        ),
    )
    lake.overwrite(
        "gold/seller_stats",
        pa.table(
            {
                "seller_id": [sel[0], sel[0], sel[1]],
                "currency": ["EUR", "INR", "EUR"],
                "orders": [40 * scale, 50 * scale, 2],
                "units": [55 * scale, 60 * scale, 2],
                "revenue_minor": [990_000 * scale, 7_000_000 * scale, 3_000],
            }
        ),
    )
    return last


def online(store: FeatureStore, view: str, key: str, values: list[str]) -> dict[str, Any]:
    """Feast's online read of every feature of one batch view."""
    refs = [f"{view}:{feature.name}" for feature in BATCH_VIEWS[view].features]
    rows = [{key: value} for value in values]
    return store.get_online_features(features=refs, entity_rows=rows).to_dict()


def test_materialize_loads_the_first_snapshot_then_later_ones(
    settings: Settings, ids: dict[str, list[str]]
) -> None:
    last = write_gold(settings, ids)
    before = datetime.now(UTC)
    first = materialize(settings)
    after = datetime.now(UTC)
    assert first.name == "feature_materialize" and first.rows_in == 3 + 2 + 3
    assert first.rows_out == {
        "features/customer_purchase_stats": 2,
        "features/product_popularity": 2,
        "features/seller_stats": 2,
        "online/customer_purchase_stats": 2,
        "online/product_popularity": 2,
        "online/seller_stats": 2,
    }
    store = feature_store(settings, settings.redis_url or "")
    customers = online(store, "customer_purchase_stats", "customer_id", ids["cus"])
    # Counts add up across currencies; money is the main currency's (most orders), never summed.
    assert customers["orders"] == [4, 1]
    assert customers["spend"] == [12_500, 999] and customers["currency"] == ["EUR", "EUR"]
    # Recency (the latest order in any currency) is computed at the snapshot's time from
    # last_order_at, not copied from gold.
    low = (before - last).total_seconds() / 86400
    high = (after - last).total_seconds() / 86400
    assert low <= customers["recency_days"][0] <= high
    assert low + 1 <= customers["recency_days"][1] <= high + 1
    products = online(store, "product_popularity", "product_id", ids["prd"])
    assert products == {
        "product_id": ids["prd"],
        "views": [200, 10],
        "cart_adds": [20, 1],
        "purchases": [8, 0],
        "conversion": [0.04, 0.0],
    }
    sellers = online(store, "seller_stats", "seller_id", ids["sel"])
    assert sellers == {
        "seller_id": ids["sel"],
        "orders": [90, 2],
        "units": [115, 2],
        "revenue": [7_000_000, 3_000],
        "currency": ["INR", "EUR"],
    }
    recorded = {fv.name: fv.most_recent_end_time for fv in store.list_feature_views()}
    assert all(recorded[view] is not None for view in BATCH_VIEWS)

    # The next run goes incrementally from there and serves the new snapshot.
    write_gold(settings, ids, scale=2)
    second = materialize(settings)
    assert second.rows_out["online/customer_purchase_stats"] == 2
    store = feature_store(settings, settings.redis_url or "")
    customers = online(store, "customer_purchase_stats", "customer_id", ids["cus"])
    assert customers["orders"] == [8, 2] and customers["spend"] == [25_000, 1_998]
    assert online(store, "seller_stats", "seller_id", ids["sel"])["orders"] == [180, 2]
    # Each run appended a snapshot: the history the point-in-time joins read.
    history = table_store(settings).read(snapshot_table("customer_purchase_stats"))
    assert history.num_rows == 4
    assert len(set(history.column("event_timestamp").to_pylist())) == 2


def test_a_first_load_covers_a_snapshot_older_than_now_minus_ttl(
    settings: Settings, ids: dict[str, list[str]], tmp_path: Path
) -> None:
    """Feast's own first incremental run starts at now - ttl and skips such a snapshot."""
    write_gold(settings, ids)
    old = datetime.now(UTC) - BATCH_TTL - timedelta(hours=6)
    snapshot_gold(settings, old)
    views = ["customer_purchase_stats"]

    # The pitfall, on a second repository over the same lake: nothing is loaded.
    control = settings.model_copy(update={"home": tmp_path / "control"})
    control_store = feature_store(control, settings.redis_url or "")
    apply(control_store, settings)
    control_store.materialize_incremental(end_date=datetime.now(UTC), feature_views=views)
    customers = online(control_store, views[0], "customer_id", ids["cus"])
    assert customers["orders"] == [None, None]

    store = feature_store(settings, settings.redis_url or "")
    apply(store, settings)
    loaded = load_online(store, views, as_of=old, end=datetime.now(UTC), lake=table_store(settings))
    assert loaded == {"customer_purchase_stats": 2}
    assert online(store, views[0], "customer_id", ids["cus"])["orders"] == [4, 1]


def test_snapshot_reads_other_column_names_and_names_what_is_missing(
    settings: Settings, ids: dict[str, list[str]]
) -> None:
    lake = table_store(settings)
    only = {name: {name: BATCH_VIEWS[name]} for name in BATCH_VIEWS}
    as_of = datetime.now(UTC)
    # No ratio column: conversion is derived (null without views); view_count for views.
    lake.overwrite(
        "gold/item_stats",
        pa.table(
            {
                "product_id": ids["prd"],
                "view_count": [50, 0],
                "cart_adds": [5, 0],
                "purchases": [5, 0],
            }
        ),
    )
    result = snapshot_gold(settings, as_of, only["product_popularity"])
    assert (result.rows_in, result.rows_out) == (2, {"features/product_popularity": 2})
    rows = lake.read(snapshot_table("product_popularity")).to_pylist()
    assert [(r["views"], r["conversion"]) for r in rows] == [(50, 0.1), (0, None)]
    assert {r["event_timestamp"] for r in rows} == {as_of}
    # The names of the brief (spend, no last_order_at): recency is gold's own column.
    lake.overwrite(
        "gold/customer_stats",
        pa.table(
            {
                "customer_id": ids["cus"],
                "orders": [2, 5],
                "spend": [100, 200],
                "currency": ["EUR", "USD"],
                "recency_days": [7, 1],
            }
        ),
    )
    snapshot_gold(settings, as_of, only["customer_purchase_stats"])
    rows = lake.read(snapshot_table("customer_purchase_stats")).to_pylist()
    assert [(r["spend"], r["currency"], r["recency_days"]) for r in rows] == [
        (100, "EUR", 7.0),
        (200, "USD", 1.0),
    ]

    lake.overwrite("gold/seller_stats", pa.table({"seller_id": ids["sel"], "orders": [1, 2]}))
    with pytest.raises(LakeError, match=r"seller_stats\.units .*tried units, units_sold"):
        snapshot_gold(settings, as_of, only["seller_stats"])
    lake.overwrite(
        "gold/customer_stats",
        pa.table(
            {
                "customer_id": ["a", "a"],
                "orders": [1, 2],
                "spend": [1, 2],
                "currency": ["EUR"] * 2,
                "recency_days": [1, 2],
            }
        ),
    )
    with pytest.raises(LakeError, match=r"repeats \(customer_id, currency\) pairs"):
        snapshot_gold(settings, as_of, only["customer_purchase_stats"])
    lake.overwrite(
        "gold/item_stats",
        pa.table(
            {"product_id": ["p", "p"], "views": [1, 2], "cart_adds": [0, 0], "purchases": [0, 0]}
        ),
    )
    with pytest.raises(LakeError, match="repeats product_id values"):
        snapshot_gold(settings, as_of, only["product_popularity"])
    assert lake.read(snapshot_table("customer_purchase_stats")).num_rows == 2  # nothing appended


def test_cli_materialize(
    settings: Settings, ids: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gold(settings, ids)
    monkeypatch.setattr(features_cli, "get_settings", lambda: settings)
    monkeypatch.setattr(features_cli, "console", Console(width=300))
    result = CliRunner().invoke(souk_app, ["features", "materialize", "--full"])
    assert result.exit_code == 0, result.output
    assert "feature_materialize: 8 rows in;" in result.output
    assert "online/customer_purchase_stats 2" in result.output
    store = feature_store(settings, settings.redis_url or "")
    assert online(store, "seller_stats", "seller_id", ids["sel"])["orders"] == [90, 2]

    bad = CliRunner().invoke(souk_app, ["features", "materialize", "--since", "yesterday"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "error: --since must be a date like 2025-01-31, not 'yesterday'"
    ]
