"""Fraud model training: labels in the lake, a point-in-time training set, gradient boosting.

labels     ``labels/fraud`` (customer_id, order_id, labelled_at): one row per labelled order,
           written once (:func:`record_labels`, e.g. from the simulator's fraud labels)
rows       the placed orders of ``silver/orders``: customer_id, event_timestamp = placed_at,
           and what the order itself tells when it is scored (total, units, lines)
features   Feast's point-in-time join (``features.batch.historical_features``): the customer's
           ``customer_purchase_stats`` as of the last snapshot at or before the order (never a
           later one), plus the streaming fraud views whose keys the rows hold and whose
           offline history has rows
model      scikit-learn's HistGradientBoostingClassifier (missing values handled natively),
           trained on the older orders and measured on the newest ``test_fraction``: ROC AUC,
           average precision, and precision/recall when the top ``alert_rate`` scores alert
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from feast import FeatureStore
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from features.batch import historical_features, source_keys
from features.store import feature_store
from features.views import FRAUD_VIEWS, TIMESTAMP_FIELD
from jobs.lake import LakeError, table_store
from jobs.result import NotEnoughData
from souk.settings import Settings

__all__ = [
    "BATCH_FEATURES",
    "FORMAT",
    "LABELS_TABLE",
    "ORDERS_TABLE",
    "ORDER_FEATURES",
    "FraudTrainingError",
    "Labelled",
    "TrainedFraudModel",
    "TrainingSet",
    "alert_metrics",
    "fit_fraud",
    "load_fraud_model",
    "load_labels",
    "load_orders",
    "offline_feature_store",
    "record_labels",
    "save_fraud_model",
    "training_set",
]

LABELS_TABLE = "labels/fraud"
LABELS_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("labelled_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
ORDERS_TABLE = "silver/orders"
#: What the order itself tells when it is scored (``silver/orders`` columns; those present).
ORDER_FEATURES = ("total_minor", "units", "line_count")
#: The batch features every model uses.
BATCH_FEATURES = (
    "customer_purchase_stats:orders",
    "customer_purchase_stats:spend",
    "customer_purchase_stats:recency_days",
)
LABEL = "is_fraud"
FORMAT = "souk.fraud_model"
FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
METRICS_FILE = "metrics.json"
FloatArray = npt.NDArray[np.float64]
#: Offline reads never contact the online store, but Feast's config needs one.
_UNUSED_REDIS_URL = "redis://127.0.0.1:6379/0"


class FraudTrainingError(NotEnoughData, ValueError):
    """The data cannot train a fraud model (no orders, labels, or one class only)."""


class Labelled(Protocol):
    """A fraud label: an account and the orders it placed (the simulator's ``FraudLabel``)."""

    @property
    def customer_id(self) -> str:
        """The labelled account."""
        ...

    @property
    def order_ids(self) -> Sequence[str]:
        """Its fraudulent orders."""
        ...


# --- labels and orders ------------------------------------------------------------------


def record_labels(
    settings: Settings, labels: Iterable[Labelled], *, labelled_at: datetime | None = None
) -> int:
    """Add one ``labels/fraud`` row per labelled order; return the rows new to the table.

    An order labelled before keeps its first row (insert-only MERGE on order_id), so the demo
    can record the same labels twice. A label without orders has nothing to train on.
    """
    stamp = (labelled_at or datetime.now(UTC)).astimezone(UTC)
    rows = [
        {"customer_id": label.customer_id, "order_id": order_id, "labelled_at": stamp}
        for label in labels
        for order_id in label.order_ids
    ]
    if not rows:
        return 0
    data = pa.Table.from_pylist(rows, schema=LABELS_SCHEMA)
    return table_store(settings).merge(LABELS_TABLE, data, ["order_id"], update=False).inserted


def load_labels(settings: Settings) -> pd.DataFrame:
    """The ``labels/fraud`` rows (empty, with its columns, before the first label)."""
    lake = table_store(settings)
    if not lake.exists(LABELS_TABLE):
        return LABELS_SCHEMA.empty_table().to_pandas()
    return lake.read(LABELS_TABLE).to_pandas()


def load_orders(settings: Settings, since: date | datetime | None = None) -> pd.DataFrame:
    """Placed orders as entity rows: order_id, customer_id, event_timestamp, order features.

    From ``silver/orders`` (``placed_at`` is the event time); ``since`` keeps orders placed
    from then on (a date: its midnight UTC).
    """
    lake = table_store(settings)
    if not lake.exists(ORDERS_TABLE):
        raise LakeError(f"no {ORDERS_TABLE}: run the silver job first")
    table = lake.read(ORDERS_TABLE)
    required = ["order_id", "customer_id", "placed_at"]
    absent = [name for name in required if name not in table.column_names]
    if absent:
        raise LakeError(f"{ORDERS_TABLE} lacks {', '.join(absent)}")
    extra = [name for name in ORDER_FEATURES if name in table.column_names]
    orders = table.select([*required, *extra]).to_pandas()
    orders = orders.rename(columns={"placed_at": TIMESTAMP_FIELD})
    orders[TIMESTAMP_FIELD] = pd.to_datetime(orders[TIMESTAMP_FIELD], utc=True)
    if since is not None:
        start = since if isinstance(since, datetime) else datetime.combine(since, time(), UTC)
        orders = orders[orders[TIMESTAMP_FIELD] >= pd.Timestamp(start)]
    return orders.dropna(subset=required[:2]).reset_index(drop=True)


# --- the training set ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows with their point-in-time features."""

    frame: pd.DataFrame  # order_id, customer_id, event_timestamp, features, is_fraud
    features: list[str]  # the model's input columns, in order
    feature_refs: list[str]  # the Feast references among them (view:feature)


def offline_feature_store(settings: Settings) -> FeatureStore:
    """A ``FeatureStore`` for offline reads (its online store is never contacted)."""
    return feature_store(settings, settings.redis_url or _UNUSED_REDIS_URL)


def training_set(
    store: FeatureStore,
    orders: pd.DataFrame,
    labels: pd.DataFrame,
    feature_refs: Sequence[str] | None = None,
) -> TrainingSet:
    """Orders with their features as of each order's time and ``is_fraud`` from ``labels``.

    ``feature_refs`` defaults to :data:`BATCH_FEATURES` plus every feature of the streaming
    fraud views whose join keys ``orders`` holds and whose offline history has rows.
    """
    if orders.empty:
        raise FraudTrainingError("no orders to train on")
    refs = list(feature_refs) if feature_refs is not None else default_refs(store, orders)
    frame = historical_features(store, orders, refs)
    frame[LABEL] = frame["order_id"].isin(set(labels["order_id"])).astype("int64")
    order_features = [name for name in ORDER_FEATURES if name in orders.columns]
    columns = [*order_features, *(ref.replace(":", "__") for ref in refs)]
    return TrainingSet(frame=frame, features=columns, feature_refs=refs)


def default_refs(store: FeatureStore, orders: pd.DataFrame) -> list[str]:
    """:data:`BATCH_FEATURES` and the streaming features the orders can be joined to."""
    refs = list(BATCH_FEATURES)
    registered = {fv.name: fv for fv in store.list_feature_views(allow_cache=True)}
    for name in FRAUD_VIEWS:
        view = registered.get(name)
        if view is None or not set(view.join_keys) <= set(orders.columns):
            continue
        if not source_keys(store, view).empty:
            refs += [f"{name}:{feature.name}" for feature in view.features]
    return refs


# --- training and metrics -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainedFraudModel:
    """A fitted classifier, its inputs and how it did on the held-out newest orders."""

    model: HistGradientBoostingClassifier
    features: list[str]
    feature_refs: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    data_start: datetime | None = None
    data_end: datetime | None = None

    def score(self, rows: pd.DataFrame, threads: int = 1) -> FloatArray:
        """Fraud probabilities of rows holding :attr:`features` (missing values allowed)."""
        with threadpool_limits(threads):
            return np.asarray(self.model.predict_proba(_matrix(rows, self.features))[:, 1])


def alert_metrics(
    labels: npt.NDArray[np.int64], scores: FloatArray, alert_rate: float
) -> dict[str, Any]:
    """Precision and recall when the top ``alert_rate`` of scores raise an alert."""
    if not 0 < alert_rate <= 1:
        raise ValueError(f"alert_rate must be in (0, 1], not {alert_rate}")
    alerts = max(1, math.ceil(alert_rate * len(scores)))
    top = np.argsort(-scores, kind="stable")[:alerts]
    caught = int(labels[top].sum())
    positives = int(labels.sum())
    return {
        "alert_rate": alert_rate,
        "alerts": alerts,
        "threshold": float(scores[top[-1]]),
        "precision_at_alert_rate": caught / alerts,
        "recall_at_alert_rate": caught / positives if positives else 0.0,
    }


def fit_fraud(
    training: TrainingSet,
    *,
    alert_rate: float = 0.05,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_iter: int = 200,
    learning_rate: float = 0.1,
    threads: int = 1,
) -> TrainedFraudModel:
    """Train on the older orders, measure on the newest ``test_fraction`` (a time split).

    ``threads`` caps OpenMP: its spinning workers make a fit on busy cores many times slower
    (600 rows: 0.2 s on one thread, 7-21 s on two while other jobs ran on the 2-core box).
    FraudTrainingError unless both parts hold fraud and legitimate orders.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    frame = training.frame.sort_values([TIMESTAMP_FIELD, "order_id"], kind="stable")
    cut = len(frame) - max(1, round(test_fraction * len(frame)))
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    for part, rows in (("training", train), ("test", test)):
        if rows[LABEL].nunique() < 2:
            raise FraudTrainingError(
                f"the {part} orders ({len(rows)}) need both fraud and legitimate labels "
                f"({int(rows[LABEL].sum())} fraud): record more labels"
            )
    # A feature with no value in any training order (e.g. no snapshot predates the orders
    # yet: the point-in-time join leaves it empty) teaches nothing and breaks the binning.
    features = [name for name in training.features if _has_values(train, name)]
    if not features:
        raise FraudTrainingError("no feature has a value in the training orders")
    params = {
        "max_iter": max_iter,
        "learning_rate": learning_rate,
        "random_state": seed,
        "features_without_values": [f for f in training.features if f not in features],
        "test_fraction": test_fraction,
        "alert_rate": alert_rate,
    }
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=learning_rate, random_state=seed
    )
    with threadpool_limits(threads):
        model.fit(_matrix(train, features), train[LABEL].to_numpy())
        scores = np.asarray(model.predict_proba(_matrix(test, features))[:, 1])
    truth = test[LABEL].to_numpy()
    metrics = {
        "roc_auc": float(roc_auc_score(truth, scores)),
        "average_precision": float(average_precision_score(truth, scores)),
        **alert_metrics(truth, scores, alert_rate),
        "train_rows": len(train),
        "test_rows": len(test),
        "train_fraud": int(train[LABEL].sum()),
        "test_fraud": int(test[LABEL].sum()),
    }
    stamps = frame[TIMESTAMP_FIELD]
    return TrainedFraudModel(
        model=model,
        features=features,
        feature_refs=[ref for ref in training.feature_refs if ref.replace(":", "__") in features],
        metrics=metrics,
        params=params,
        data_start=stamps.min().to_pydatetime(),
        data_end=stamps.max().to_pydatetime(),
    )


def _has_values(rows: pd.DataFrame, feature: str) -> bool:
    """True if ``feature`` holds at least one number in ``rows``."""
    return bool(pd.to_numeric(rows[feature], errors="coerce").notna().any())


def _matrix(rows: pd.DataFrame, features: Sequence[str]) -> FloatArray:
    """The float matrix of ``features`` (nulls as NaN: the model handles them)."""
    numeric = rows[list(features)].apply(pd.to_numeric, errors="coerce")
    return np.asarray(numeric.to_numpy(dtype="float64"), dtype=np.float64)


# --- artifact -----------------------------------------------------------------------------


def save_fraud_model(directory: Path, trained: TrainedFraudModel) -> Path:
    """Write ``model.joblib`` and ``metrics.json`` (format, inputs, metrics) into ``directory``.

    The signature fits ``ModelRegistry.register``'s writer: ``partial(save_fraud_model,
    trained=...)``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(trained.model, directory / MODEL_FILE)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features": trained.features,
        "feature_refs": trained.feature_refs,
        "params": trained.params,
        "metrics": trained.metrics,
        "data_start": trained.data_start.isoformat() if trained.data_start else None,
        "data_end": trained.data_end.isoformat() if trained.data_end else None,
    }
    (directory / METRICS_FILE).write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
    return directory


def load_fraud_model(directory: Path) -> TrainedFraudModel:
    """A model saved by :func:`save_fraud_model` (ValueError for another format)."""
    header = json.loads((directory / METRICS_FILE).read_text())
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory} is not a {FORMAT} v{FORMAT_VERSION} artifact")
    return TrainedFraudModel(
        model=joblib.load(directory / MODEL_FILE),
        features=list(header["features"]),
        feature_refs=list(header["feature_refs"]),
        metrics=dict(header["metrics"]),
        params=dict(header["params"]),
        data_start=_parse(header.get("data_start")),
        data_end=_parse(header.get("data_end")),
    )


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
