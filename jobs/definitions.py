"""The platform's batch jobs: what `souk jobs` schedules and `souk jobs export-airflow` exports.

Targets are ``"module:function"`` strings resolved when a job runs, so this module imports
nothing heavy. Crons are UTC. Hourly jobs refresh the lake and the online features; the
models retrain once a day, at the same minute as the hourly jobs (the Airflow DAG runs on
the hourly cron and lets daily jobs run on the tick where they are due).
"""

from __future__ import annotations

from jobs.schedule import JobDefinition

HOURLY = "15 * * * *"
DAILY = "15 2 * * *"  # 02:15 UTC: after the night's last orders, before Europe's morning

DEFINITIONS: tuple[JobDefinition, ...] = (
    JobDefinition(
        name="silver",
        description="Bronze events → cleaned, deduplicated, typed silver tables.",
        schedule=HOURLY,
        target="jobs.silver:run",
        inputs=("bronze/*",),
        outputs=("silver/*",),
        spark=True,
    ),
    JobDefinition(
        name="gold",
        description="Silver → gold aggregates: interactions, item and customer statistics.",
        schedule=HOURLY,
        target="jobs.gold:run",
        inputs=("silver/*",),
        outputs=("gold/*",),
        depends_on=("silver",),
        spark=True,
    ),
    JobDefinition(
        name="train_als",
        description="Train the ALS recommender on the gold interactions.",
        schedule=DAILY,
        target="models.jobs:train_als",
        inputs=("gold/user_item_interactions",),
        outputs=("models/als",),
        depends_on=("gold",),
    ),
    JobDefinition(
        name="item_embeddings",
        description="Item vectors (ALS factors, text embeddings) and a nearest-neighbour index.",
        schedule=DAILY,
        target="models.jobs:item_embeddings",
        inputs=("models/als", "silver/*"),
        outputs=("models/item_embeddings",),
        depends_on=("train_als",),
    ),
    JobDefinition(
        name="feature_materialize",
        description="Materialise the gold features into the online feature store.",
        schedule=HOURLY,
        target="features.jobs:materialize",
        inputs=("gold/*",),
        outputs=("features/online",),
        depends_on=("gold",),
    ),
    JobDefinition(
        name="fraud_model",
        description="Retrain the fraud classifier on labelled orders, point-in-time features.",
        schedule=DAILY,
        target="models.fraud.job:train_fraud",
        inputs=("silver/orders", "labels/fraud", "features/customer_purchase_stats"),
        outputs=("models/fraud",),
        # Training reads the feature snapshots the materialization writes.
        depends_on=("feature_materialize",),
    ),
)
