"""The ``fraud_model`` job: retrain the fraud classifier daily and register it.

Target ``models.fraud.job:train_fraud``. It reads ``silver/orders`` and ``labels/fraud``,
joins the customers' batch features as of each order (the ``features/*`` snapshot history
that ``feature_materialize`` appends), trains and registers a new version of kind ``fraud``
in the model registry. Registering does not serve it: ``souk models promote fraud <version>``
does, after a look at its metrics.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

from features.store import apply
from jobs.result import JobResult
from models.fraud.training import (
    TrainedFraudModel,
    fit_fraud,
    load_labels,
    load_orders,
    offline_feature_store,
    save_fraud_model,
    training_set,
)
from models.registry import ModelRegistry, ModelVersion
from souk.settings import Settings

__all__ = ["KIND", "register_fraud_model", "train_fraud"]

logger = logging.getLogger(__name__)

#: The registry kind of the fraud classifier.
KIND = "fraud"


def train_fraud(
    settings: Settings, *, full: bool = False, since: date | datetime | None = None
) -> JobResult:
    """Train the fraud classifier on the labelled orders and register it (not promoted).

    Every order trains it by default (``full`` changes nothing: the model is always rebuilt
    from all of history); ``since`` keeps the orders placed from that date on.
    """
    orders = load_orders(settings, since=since)
    labels = load_labels(settings)
    store = offline_feature_store(settings)
    apply(store, settings)  # the batch views must be registered for Feast to join them
    trained = fit_fraud(training_set(store, orders, labels))
    version = register_fraud_model(ModelRegistry(settings=settings), trained)
    logger.info(
        "fraud model %s: ROC AUC %.3f, precision %.2f / recall %.2f at %.0f %% alerts",
        version.id,
        trained.metrics["roc_auc"],
        trained.metrics["precision_at_alert_rate"],
        trained.metrics["recall_at_alert_rate"],
        100 * trained.metrics["alert_rate"],
    )
    return JobResult(name="fraud_model", rows_in=len(orders), rows_out={f"models/{KIND}": 1})


def register_fraud_model(registry: ModelRegistry, trained: TrainedFraudModel) -> ModelVersion:
    """Add ``trained`` as a new version of kind ``fraud`` (its files: ``save_fraud_model``)."""

    def write(folder: Path) -> None:
        save_fraud_model(folder, trained)

    meta = {
        "data_start": trained.data_start,
        "data_end": trained.data_end,
        "params": trained.params,
        "metrics": trained.metrics,
        "features": trained.features,
        "feature_refs": trained.feature_refs,
    }
    return registry.register(KIND, write, meta)
