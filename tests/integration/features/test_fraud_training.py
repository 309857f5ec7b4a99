"""The fraud training set and model: real Delta tables under tmp_path, real Feast (offline only).

Snapshots are written at known times through ``snapshot_gold``, so which value each order
must see is known exactly; the model test plants its signal in the batch features only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.batch import BATCH_TTL, BATCH_VIEWS, snapshot_gold, snapshot_table
from features.store import apply, repo_dir
from features.views import FRAUD_VIEWS
from jobs.lake import table_store
from models.fraud.job import KIND, train_fraud
from models.fraud.training import (
    FraudTrainingError,
    TrainingSet,
    fit_fraud,
    load_fraud_model,
    load_labels,
    load_orders,
    offline_feature_store,
    record_labels,
    training_set,
)
from models.registry import ModelRegistry
from souk.settings import Settings
from souk.simulation.report import FraudLabel

pytestmark = pytest.mark.integration

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
CUSTOMER_VIEW = {"customer_purchase_stats": BATCH_VIEWS["customer_purchase_stats"]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A private SOUK_HOME: lake, feature repository and model registry under tmp_path."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path / "home", redis_url=None, lake_uri=None
    )


def write_customer_stats(settings: Settings, stats: dict[str, tuple[int, int]]) -> None:
    """gold/customer_stats as the gold job writes it: customer → (orders, spend_minor)."""
    customers = list(stats)
    last = T0 - timedelta(days=1)
    table_store(settings).overwrite(
        "gold/customer_stats",
        pa.table(
            {
                "customer_id": customers,
                "currency": ["EUR"] * len(customers),
                "orders": [stats[c][0] for c in customers],
                "spend_minor": [stats[c][1] for c in customers],
                "first_order_at": pa.array([last] * len(customers), TS),
                "last_order_at": pa.array([last] * len(customers), TS),
                "recency_days": pa.array([1] * len(customers), pa.int32()),
            }
        ),
    )


def write_orders(settings: Settings, orders: list[dict[str, Any]]) -> None:
    """silver/orders rows (order_id, customer_id, placed_at, money and sizes)."""
    table_store(settings).overwrite(
        "silver/orders",
        pa.Table.from_pylist(
            orders,
            schema=pa.schema(
                [
                    ("order_id", pa.string()),
                    ("customer_id", pa.string()),
                    ("currency", pa.string()),
                    ("total_minor", pa.int64()),
                    ("units", pa.int64()),
                    ("line_count", pa.int32()),
                    ("status", pa.string()),
                    ("placed_at", TS),
                ]
            ),
        ),
    )


def order(
    order_id: str, customer_id: str, placed_at: datetime, total: int = 5000
) -> dict[str, Any]:
    """One silver order."""
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "currency": "EUR",
        "total_minor": total,
        "units": 2,
        "line_count": 1,
        "status": "placed",
        "placed_at": placed_at,
    }


def test_each_order_sees_the_snapshot_before_it_never_a_later_one(settings: Settings) -> None:
    t1, t3 = T0, T0 + timedelta(hours=4)
    write_customer_stats(settings, {"cus_a": (1, 1_000), "cus_b": (7, 70_000)})
    snapshot_gold(settings, t1, CUSTOMER_VIEW)
    write_customer_stats(settings, {"cus_a": (2, 2_000), "cus_b": (8, 80_000)})
    snapshot_gold(settings, t3, CUSTOMER_VIEW)
    assert len(table_store(settings).file_uris(snapshot_table("customer_purchase_stats"))) == 2
    write_orders(
        settings,
        [
            order("o_between", "cus_a", t1 + timedelta(hours=2)),  # after t1, before t3
            order("o_at_t3", "cus_a", t3),  # a snapshot stamped at the order's time counts
            order("o_before_any", "cus_a", t1 - timedelta(minutes=1)),
            order("o_unknown", "cus_new", t1 + timedelta(hours=2)),
            order("o_stale", "cus_a", t3 + BATCH_TTL + timedelta(minutes=1)),
            order("o_b1", "cus_b", t1 + timedelta(hours=2)),  # two orders, same customer
            order("o_b2", "cus_b", t1 + timedelta(hours=2)),  # and time: both kept
        ],
    )
    record_labels(
        settings,
        [FraudLabel(session=1, customer_id="cus_a", kinds=("velocity",), order_ids=["o_between"])],
    )
    store = offline_feature_store(settings)
    apply(store, settings)

    training = training_set(store, load_orders(settings), load_labels(settings))

    frame = training.frame.set_index("order_id")
    assert list(training.frame["order_id"]) == [
        "o_between",
        "o_at_t3",
        "o_before_any",
        "o_unknown",
        "o_stale",
        "o_b1",
        "o_b2",
    ]
    orders = frame["customer_purchase_stats__orders"]
    spend = frame["customer_purchase_stats__spend"]
    assert (orders["o_between"], spend["o_between"]) == (1, 1_000)  # not t3's 2 / 2,000
    assert (orders["o_at_t3"], spend["o_at_t3"]) == (2, 2_000)
    for nothing_yet in ("o_before_any", "o_unknown", "o_stale"):
        assert pd.isna(orders[nothing_yet]) and pd.isna(spend[nothing_yet])
    assert list(orders[["o_b1", "o_b2"]]) == [7, 7]
    # Recency as of t1's snapshot: last order a day before T0 = t1.
    assert frame.loc["o_between", "customer_purchase_stats__recency_days"] == pytest.approx(1.0)
    assert frame["is_fraud"].to_dict() == {
        "o_between": 1,
        "o_at_t3": 0,
        "o_before_any": 0,
        "o_unknown": 0,
        "o_stale": 0,
        "o_b1": 0,
        "o_b2": 0,
    }
    assert training.features == [
        "total_minor",
        "units",
        "line_count",
        "customer_purchase_stats__orders",
        "customer_purchase_stats__spend",
        "customer_purchase_stats__recency_days",
    ]


def test_streaming_signals_join_once_their_offline_history_has_rows(settings: Settings) -> None:
    write_customer_stats(settings, {"cus_a": (1, 1_000)})
    snapshot_gold(settings, T0, CUSTOMER_VIEW)
    write_orders(
        settings,
        [order("o_1", "cus_a", T0 + timedelta(hours=1)), order("o_2", "cus_b", T0)],
    )
    store = offline_feature_store(settings)
    apply(store, settings)
    orders = load_orders(settings)
    no_history = training_set(store, orders, load_labels(settings))
    assert not any(name.startswith("customer_fraud_signals") for name in no_history.features)

    # An offline push of the fraud signals (what the streaming job's history would hold).
    path = repo_dir(settings) / "offline" / "customer_fraud_signals.parquet"
    schema = pq.read_schema(path)
    row = {name: 3 for name in schema.names} | {
        "customer_id": "cus_a",
        "amount_mean_minor": 1.5,
        "amount_std_minor": 0.5,
        "amount_zscore": 2.0,
        "event_timestamp": T0 + timedelta(minutes=30),
    }
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path)
    with_history = training_set(store, orders, load_labels(settings))
    signals = [
        f"customer_fraud_signals__{f.name}" for f in FRAUD_VIEWS["customer_fraud_signals"].features
    ]
    assert with_history.features == [*no_history.features, *signals]
    frame = with_history.frame.set_index("order_id")
    assert frame.loc["o_1", "customer_fraud_signals__orders_1h"] == 3
    assert frame.loc["o_1", "customer_fraud_signals__amount_zscore"] == 2.0
    assert frame.loc["o_2", signals].isna().all()


def test_labels_are_recorded_once_per_order(settings: Settings) -> None:
    labels = [
        FraudLabel(session=1, customer_id="cus_x", kinds=("card_testing",), order_ids=["o1", "o2"]),
        FraudLabel(session=2, customer_id="cus_y", kinds=("ato",), order_ids=[]),
    ]
    first = datetime(2025, 1, 1, tzinfo=UTC)
    assert record_labels(settings, labels, labelled_at=first) == 2
    assert record_labels(settings, labels) == 0  # the demo may record the same labels again
    assert record_labels(settings, []) == 0
    stored = load_labels(settings).sort_values("order_id")
    assert stored[["customer_id", "order_id"]].values.tolist() == [["cus_x", "o1"], ["cus_x", "o2"]]
    assert set(stored["labelled_at"]) == {pd.Timestamp(first)}


def planted_history(settings: Settings, rng: np.random.Generator) -> list[FraudLabel]:
    """A snapshot at T0 and orders within a day after it; fraudsters have thin histories.

    Order totals, units and lines do not depend on fraud: only the batch features carry it.
    """
    fraudsters = {f"cus_{n:04d}" for n in range(0, 400, 6)}
    stats: dict[str, tuple[int, int]] = {}
    for n in range(400):
        customer = f"cus_{n:04d}"
        count = int(rng.poisson(0.6)) if customer in fraudsters else 1 + int(rng.poisson(5))
        stats[customer] = (count, int(count * rng.uniform(1_000, 6_000)))
    write_customer_stats(settings, stats)
    snapshot_gold(settings, T0, CUSTOMER_VIEW)
    # A snapshot after every order, where fraudsters look like regulars: it must not leak in.
    write_customer_stats(settings, {c: (40, 200_000) for c in stats})
    snapshot_gold(settings, T0 + timedelta(days=1, hours=1), CUSTOMER_VIEW)
    rows: list[dict[str, Any]] = []
    labels: list[FraudLabel] = []
    for customer in stats:
        ids = []
        for _ in range(1 + int(rng.integers(0, 3))):
            ids.append(f"ord_{len(rows):05d}")
            placed = T0 + timedelta(minutes=int(rng.integers(1, 24 * 60)))
            rows.append(order(ids[-1], customer, placed, total=int(rng.integers(500, 20_000))))
        if customer in fraudsters:
            labels.append(
                FraudLabel(session=len(labels), customer_id=customer, kinds=("x",), order_ids=ids)
            )
    write_orders(settings, rows)
    return labels


def test_a_model_on_a_planted_signal_beats_chance_through_the_feature_store(
    settings: Settings,
) -> None:
    labels = planted_history(settings, np.random.default_rng(7))
    assert record_labels(settings, labels) == sum(len(label.order_ids) for label in labels)

    result = train_fraud(settings)

    orders = load_orders(settings)
    assert result.name == "fraud_model" and result.rows_in == len(orders)
    assert result.rows_out == {"models/fraud": 1}
    registry = ModelRegistry(settings=settings)
    [version] = registry.list(KIND)
    assert registry.promoted(KIND) is None  # registering does not serve it
    assert version.metrics["roc_auc"] > 0.8
    assert 0 < version.metrics["recall_at_alert_rate"] <= 1
    assert version.metrics["alerts"] == int(np.ceil(0.05 * version.metrics["test_rows"]))
    assert version.extra["feature_refs"] == [
        "customer_purchase_stats:orders",
        "customer_purchase_stats:spend",
        "customer_purchase_stats:recency_days",
    ]
    model = load_fraud_model(version.path)
    assert (version.path / "metrics.json").is_file() and (version.path / "model.joblib").is_file()

    # The same rows scored again give the same test AUC; without the feature-store columns
    # (order features only) the model is at chance: the signal came through Feast.
    store = offline_feature_store(settings)
    training = training_set(store, orders, load_labels(settings))
    assert len(training.frame) == len(orders)
    assert training.frame["customer_purchase_stats__orders"].max() < 40  # no future snapshot
    scores = model.score(training.frame)
    assert scores.shape == (len(orders),) and ((scores >= 0) & (scores <= 1)).all()
    blind = fit_fraud(
        TrainingSet(training.frame, ["total_minor", "units", "line_count"], feature_refs=[])
    )
    assert blind.metrics["roc_auc"] < 0.7 < version.metrics["roc_auc"]


def test_one_class_cannot_train(settings: Settings) -> None:
    write_customer_stats(settings, {"cus_a": (1, 100)})
    snapshot_gold(settings, T0, CUSTOMER_VIEW)
    write_orders(settings, [order(f"o{n}", "cus_a", T0 + timedelta(hours=n)) for n in range(8)])
    with pytest.raises(FraudTrainingError, match="need both fraud and legitimate labels"):
        train_fraud(settings)


def test_a_feature_empty_in_every_training_order_is_left_out(settings: Settings) -> None:
    # No snapshot predates these orders (as in a first demo run): the point-in-time join
    # leaves the customer features empty, and the model trains on what has values.
    labels = planted_history(settings, np.random.default_rng(3))
    record_labels(settings, labels)
    store = offline_feature_store(settings)
    apply(store, settings)
    training = training_set(store, load_orders(settings), load_labels(settings))
    empty = "customer_purchase_stats__orders"
    training.frame[empty] = np.nan
    trained = fit_fraud(training)
    assert empty not in trained.features and "total_minor" in trained.features
    assert trained.params["features_without_values"] == [empty]
    assert "customer_purchase_stats:orders" not in trained.feature_refs
