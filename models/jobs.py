"""The scheduled model jobs: ALS (evaluated beside item-kNN and popularity) and item vectors.

``train_als`` (after gold): a time-split evaluation of ALS, item-kNN and popularity on the
lake's ``gold/user_item_interactions`` (HTML report + JSON under ``SOUK_HOME/reports``), then
ALS and item-kNN trained on every interaction and frequently-bought-together on
``gold/co_purchases``, each registered with its data window, parameters and metrics and
promoted (serving picks promotions up without a restart).

``item_embeddings`` (after train_als): product text (the catalog's latest title, brand,
category and description, from ``bronze/catalog``) through the offline MiniLM encoder,
combined with the promoted ALS item factors (cold-start items get predicted factors), and a
FAISS index built over them (its recall@10 against exact search recorded), registered as
kind ``item_vectors`` with the ALS version it came from, and promoted.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.result import JobResult, NotEnoughData
from models.registry import ModelRegistry, ModelVersion
from souk.settings import Settings

logger = logging.getLogger("souk.models.jobs")

#: Share of the newest interactions held out by the evaluation.
TEST_FRACTION = 0.2
#: Registry kinds the jobs write.
ALS, ITEM_KNN, FBT, ITEM_VECTORS = "als", "item_knn", "fbt", "item_vectors"
#: Weight of the collaborative part in the combined item vectors.
COLLABORATIVE_WEIGHT = 0.5


def reports_dir(settings: Settings) -> Path:
    """Where evaluation reports go: ``SOUK_HOME/reports``."""
    return settings.state_dir / "reports"


def train_als(
    settings: Settings, *, full: bool = False, since: date | datetime | None = None
) -> JobResult:
    """Evaluate, train, register and promote ALS, item-kNN and frequently-bought-together."""
    from models.evaluation.report import default_trainers, train_and_evaluate, write_html_report
    from models.evaluation.split import cut_at_fraction, time_split
    from models.recommenders.als import train_implicit
    from models.recommenders.artifact import load_interactions
    from models.recommenders.fbt import load_co_purchases, train_fbt
    from models.recommenders.item_knn import train_item_knn

    interactions = load_interactions(settings)
    if since is not None:
        interactions = interactions[interactions["last_at"] >= _utc(since)]
    if interactions.empty:
        raise NotEnoughData("gold/user_item_interactions is empty: nothing to train on")
    cut = cut_at_fraction(interactions, TEST_FRACTION)
    split = time_split(interactions, cut)
    summary = train_and_evaluate(
        default_trainers(), split, k=10, dataset=f"gold (cut {cut:%Y-%m-%d %H:%M} UTC)"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = write_html_report(summary, reports_dir(settings) / f"models-gold-{stamp}.html")
    summary["report"] = str(report)
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    window = {
        "data_start": interactions["last_at"].min(),
        "data_end": interactions["last_at"].max(),
    }
    registry = ModelRegistry(settings=settings)
    als = train_implicit(interactions)
    knn = train_item_knn(interactions)
    metrics = summary["models"]
    versions = [
        _register(registry, ALS, als, als.params, metrics.get("als", {}), window, report),
        _register(registry, ITEM_KNN, knn, {}, metrics.get("item_knn", {}), window, report),
    ]
    co_purchases = load_co_purchases(settings)
    if not co_purchases.empty:
        from models.recommenders.popularity import load_item_stats

        fbt = train_fbt(co_purchases, load_item_stats(settings))
        versions.append(_register(registry, FBT, fbt, {}, {}, window, report))
    for version in versions:
        registry.promote(version.kind, version.id)
    logger.info("models %s; report %s", ", ".join(f"{v.kind} {v.id}" for v in versions), report)
    return JobResult(
        name="train_als",
        rows_in=len(interactions),
        rows_out={f"models/{v.kind}": 1 for v in versions},
    )


def _register(
    registry: ModelRegistry,
    kind: str,
    model: Any,
    params: dict[str, Any],
    metrics: dict[str, Any],
    window: dict[str, Any],
    report: Path,
) -> ModelVersion:
    return registry.register(
        kind,
        model.save,
        {**window, "params": params, "metrics": metrics, "report": str(report)},
    )


def catalog_texts(settings: Settings) -> pd.DataFrame:
    """Each product's latest text (product_id, text) from the catalog's bronze events."""
    from jobs.lake.store import table_store
    from jobs.lake.tables import bronze_table
    from models.embeddings.items import product_text

    frame = (
        table_store(settings)
        .read(bronze_table("catalog"), columns=["event_type", "occurred_at", "payload"])
        .to_pandas()
    )
    frame = frame[frame["event_type"].isin(["product.created", "product.updated"])]
    rows: dict[str, str] = {}  # in event-time order: the latest version of a product wins
    for payload in frame.sort_values("occurred_at")["payload"]:
        product = json.loads(payload)
        rows[product["product_id"]] = product_text(
            product.get("title", ""),
            product.get("description") or "",
            product.get("brand") or "",
            product.get("category_path") or (),
        )
    return pd.DataFrame({"product_id": list(rows), "text": list(rows.values())})


def item_embeddings(
    settings: Settings, *, full: bool = False, since: date | datetime | None = None
) -> JobResult:
    """Combined text + ALS item vectors and their FAISS index, registered and promoted."""
    from models.embeddings.items import combine
    from models.embeddings.text import TextEncoder
    from models.recommenders.artifact import FactorModel
    from models.vector_index import build_index

    registry = ModelRegistry(settings=settings)
    als_version = registry.promoted(ALS)
    texts = catalog_texts(settings)
    if texts.empty:
        raise NotEnoughData("bronze/catalog holds no product: nothing to embed")
    encoded = TextEncoder().encode(texts["text"].tolist())
    if als_version is not None:
        als = FactorModel.load(als_version.path)
        als_ids, als_vectors = als.item_ids.tolist(), als.item_factors
    else:  # no ALS yet: text only
        als_ids, als_vectors = [], np.empty((0, 0), dtype=np.float32)
    vectors = combine(
        als_ids, als_vectors, texts["product_id"].tolist(), encoded, COLLABORATIVE_WEIGHT
    )
    cold = len(set(vectors.ids) - set(als_ids))

    def write(folder: Path) -> None:
        info = build_index(vectors.ids, vectors.vectors, folder, threads=1)
        (folder / "build.json").write_text(json.dumps(info.to_json(), indent=2))

    version = registry.register(
        ITEM_VECTORS,
        write,
        {
            "params": {
                "collaborative_weight": COLLABORATIVE_WEIGHT,
                "als_version": als_version.id if als_version else None,
                "text_model": "all-MiniLM-L6-v2 (int8 ONNX)",
            },
            "metrics": {"items": len(vectors.ids), "cold_start_items": cold},
        },
    )
    registry.promote(ITEM_VECTORS, version.id)
    return JobResult(
        name="item_embeddings",
        rows_in=len(texts),
        rows_out={f"models/{ITEM_VECTORS}": len(vectors.ids)},
    )


def latest_figures(settings: Settings) -> dict[str, Any]:
    """The newest models' headline figures: offline metrics, FAISS index, fraud model."""
    registry = ModelRegistry(settings=settings)
    figures: dict[str, Any] = {"metrics": {}, "faiss": {}, "fraud": {}}
    als = registry.latest(ALS)
    if als is not None:
        report = Path(str(als.extra.get("report", "")))
        summary_path = report.with_suffix(".json")
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            for name, values in summary.get("models", {}).items():
                figures["metrics"][name] = {
                    key: float(value) for key, value in values.items() if "@" in key
                }
            figures["report"] = str(report)
    vectors = registry.latest(ITEM_VECTORS)
    if vectors is not None and (vectors.path / "index.json").is_file():
        index = json.loads((vectors.path / "index.json").read_text())
        figures["faiss"] = {
            "index": index.get("kind"),
            "items": index.get("count"),
            "recall@10 vs exact": float(index.get("recall_at_10", float("nan"))),
            "query p50 (ms)": float(index.get("query_ms_p50", float("nan"))),
        }
    fraud = registry.latest("fraud")
    if fraud is not None:
        rate = float(fraud.metrics.get("alert_rate", 0.0))
        labels = {
            "roc_auc": "ROC AUC",
            "precision_at_alert_rate": f"precision at {rate:.0%} alerts",
            "recall_at_alert_rate": f"recall at {rate:.0%} alerts",
        }
        figures["fraud"] = {
            label: float(fraud.metrics[key])
            for key, label in labels.items()
            if key in fraud.metrics
        }
    return figures


def _utc(moment: date | datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
