"""ALS against popularity on the simulator's own shoppers (their planned sessions, no server).

Each shopper browses mostly in its favourite categories (SimulationConfig.taste_share), over
a Zipf-popular catalog: what a recommender can learn beyond what sells most.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from models.evaluation.report import default_trainers, train_and_evaluate
from models.evaluation.split import cut_at_fraction, time_split
from souk.seed import SeededCatalog, SeededProduct, SeededSku, storefront_prices, zipf_weights
from souk.simulation import ShopperModel, SimulationConfig

START = datetime(2026, 11, 1, tzinfo=UTC)


def shop(products: int = 300, categories: int = 12) -> SeededCatalog:
    """``products`` in ``categories``, popularity (Zipf) independent of the category."""
    weights = zipf_weights(products)
    return SeededCatalog(
        [
            SeededProduct(
                f"prd_{i:04d}",
                "sel_1",
                f"Thing {i}",
                f"cat_{(i * 7) % categories}",
                (SeededSku(f"SKU-{i:04d}", f"prd_{i:04d}", storefront_prices(1500, "EUR"), {}),),
                weights[i],
            )
            for i in range(products)
        ]
    )


def interactions(sessions: int = 6000, users: int = 400) -> pd.DataFrame:
    """Gold-style strengths (view 1, cart add 3) of the planned sessions."""
    catalog = shop()
    model = ShopperModel(catalog, SimulationConfig(users=users, seed=11, fraud_share=0.0))
    product_of = {sku.sku: sku.product_id for sku in catalog.skus}
    rows = []
    for plan in model.sessions(sessions):
        at = START + timedelta(minutes=plan.index)
        customer = f"cus_{plan.shopper:04d}"
        rows += [(customer, view.product_id, 1.0, at) for view in plan.views]
        rows += [(customer, product_of[line.sku], 3.0, at) for line in plan.lines]
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "strength", "last_at"])
    return frame.groupby(["customer_id", "product_id"], as_index=False).agg(
        strength=("strength", "sum"), last_at=("last_at", "max"), events=("strength", "size")
    )


def test_als_beats_popularity_clearly_on_the_simulators_shoppers() -> None:
    data = interactions()
    split = time_split(data, cut_at_fraction(data, 0.2))
    summary = train_and_evaluate(default_trainers(), split, k=10)
    precision = {name: m["precision@10"] for name, m in summary["models"].items()}
    ndcg = {name: m["ndcg@10"] for name, m in summary["models"].items()}
    # Measured: P@10 0.324 vs 0.188 (x1.72), nDCG@10 0.489 vs 0.300 (x1.63); without tastes
    # (taste_share 0) ALS and popularity tie: the margin is the tastes ALS learned.
    assert precision["als"] > 1.5 * precision["popularity"], (precision, ndcg)
    assert ndcg["als"] > 1.4 * ndcg["popularity"], (precision, ndcg)
