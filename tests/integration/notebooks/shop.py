"""The notebooks' fixture: the analytics scenario's small shop, plus what the notebooks read
outside the analytics store (model registry versions, an evaluation report, fraud labels).

Hand-computed figures of the additions (the scenario's own are in tests/unit/analytics):

- fraud: alerts a3 (account c3, order o3, velocity) and a4 (order o2 only, whose account is
  c2; velocity + bulk_quantity); a1 and a2 of the scenario name no account. Labelled accounts:
  c3 and c1. Alerted accounts {c3, c2}, caught {c3}: precision 1/2, recall 1/2; per rule
  velocity {c3, c2} → 1/2, bulk_quantity {c2} → 0.
- registry: als v1 (precision@10 0.25) and v2 (0.31), v2 promoted; item_knn k1 (0.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.flatten import Source
from jobs.analytics.loader import BatchWriter, prepare
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from tests.unit.analytics import scenario

OFFLINE = {("als", "v1"): 0.25, ("als", "v2"): 0.31, ("item_knn", "k1"): 0.2}
REPORT_MODELS = {
    "als": {"precision@10": 0.31, "recall@10": 0.2, "ndcg@10": 0.33},
    "popularity": {"precision@10": 0.12, "recall@10": 0.05, "ndcg@10": 0.1},
}


@dataclass(frozen=True)
class Label:
    """A labelled account and its orders (models.fraud.training.Labelled)."""

    customer_id: str
    order_ids: tuple[str, ...]


LABELS = (Label("c3", ("o3",)), Label("c1", ("o1", "o4")))


def events() -> list[Envelope]:
    """The scenario's events and two alerts that name an account (directly or by order)."""
    extra = [
        REGISTRY.new_event(
            "fraud.alert_raised",
            {
                "alert_id": alert,
                "subject_type": "order",
                "subject_id": order,
                "order_id": order,
                "score": 0.8,
                "severity": "high",
                "rules": rules,
                **({"customer_id": customer} if customer else {}),
            },
            region=region,
            occurred_at=scenario.TUE,
        )
        for alert, order, customer, region, rules in (
            ("a3", "o3", "c3", "us", ["velocity"]),
            ("a4", "o2", None, "eu", ["velocity", "bulk_quantity"]),
        )
    ]
    return [*scenario.build(), *extra]


def load(store: ChdbStore, settings: Settings, envelopes: list[Envelope]) -> None:
    """The loader's batch path: create the tables, write the events in batches of 25."""
    prepare(store, settings)
    writer = BatchWriter(store, "notebooks-test")
    records = [
        (e, Source(topic_for(REGISTRY.spec(e.event_type).domain, e.region), 0, i))
        for i, e in enumerate(envelopes)
    ]
    for start in range(0, len(records), 25):
        batch = records[start : start + 25]
        writer.load(batch, {(s.topic, 0): s.offset for _, s in batch})


def register_models(settings: Settings) -> None:
    """Model versions with offline metrics, v2 promoted, and one evaluation report (JSON)."""
    from models.jobs import reports_dir
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings=settings)
    for (kind, version), precision in OFFLINE.items():
        registry.register(
            kind,
            lambda folder: (folder / "model.bin").write_bytes(b"x"),
            {"metrics": {"precision@10": precision, "recall@10": precision / 2}},
            version_id=version,
        )
    registry.promote("als", "v1")
    registry.promote("als", "v2")
    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": "notebooks fixture",
        "k": 10,
        "models": REPORT_MODELS,
        "curves": {
            "ks": [1, 5, 10],
            "models": {
                "als": {"precision": [0.5, 0.4, 0.31]},
                "popularity": {"precision": [0.2, 0.15, 0.12]},
            },
        },
    }
    # an older report first: the notebook must read the newest
    (folder / "models-gold-20261201T000000Z.json").write_text(json.dumps({**report, "models": {}}))
    (folder / "models-gold-20261208T000000Z.json").write_text(json.dumps(report))


def record_fraud_labels(settings: Settings) -> int:
    """The simulator's labels, through the same function the demo uses."""
    from models.fraud.training import record_labels

    return record_labels(settings, LABELS)
