"""Frequently bought together: each product's top partners from the gold co-purchase counts.

For products A and B, with N orders in all, n_A orders containing A and n_AB containing both:

- support(A, B)    = n_AB / N
- confidence(A→B)  = n_AB / n_A        ("of the orders with A, the share that also had B")
- lift(A, B)       = n_AB · N / (n_A · n_B)   (> 1: bought together more than by chance)

Partners are ranked by lift among pairs seen in at least ``min_orders`` orders (the support
floor keeps one-off coincidences of rare products out), ties broken by n_AB. For a fixed A,
lift ranks partners by n_AB / n_B, so the ranking does not depend on N: when the total number
of orders is not given, N is estimated (Σ n_A, an upper bound) and only lift's scale is off.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from models.recommenders.artifact import ITEM_COL, read_header, read_json, write_json

if TYPE_CHECKING:
    from souk.settings import Settings

CO_PURCHASES_TABLE = "gold/co_purchases"
FBT_FORMAT = "souk.fbt"
PARTNER_COLUMNS = ("product", "partner", "orders", "support", "confidence", "lift", "score")

RankBy = Literal["lift", "confidence", "orders"]


@dataclass(frozen=True, eq=False)
class FBTModel:
    """Per product, its ranked partners with support, confidence and lift."""

    partners: pd.DataFrame  # PARTNER_COLUMNS, sorted by product then rank
    params: dict[str, Any] = field(default_factory=dict)
    _by_product: dict[str, pd.DataFrame] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        groups = {str(key): rows for key, rows in self.partners.groupby("product", sort=False)}
        object.__setattr__(self, "_by_product", groups)

    @property
    def products(self) -> int:
        """How many products have at least one partner."""
        return len(self._by_product)

    def partners_of(self, product_id: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` best partners of ``product_id`` with their scores (best first)."""
        rows = self._by_product.get(product_id)
        if rows is None:
            return []
        head = rows.head(n)
        return list(zip(head["partner"].tolist(), head["score"].tolist(), strict=True))

    def details(self, product_id: str, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` best partners with orders, support, confidence and lift."""
        rows = self._by_product.get(product_id)
        return [] if rows is None else rows.head(n).to_dict("records")

    def for_basket(self, product_ids: Iterable[str], n: int = 10) -> list[tuple[str, float]]:
        """Partners of a whole basket: scores summed over its products, basket items excluded."""
        basket = set(product_ids)
        totals: dict[str, float] = {}
        for product in basket:
            rows = self._by_product.get(product)
            if rows is None:
                continue
            for partner, score in zip(rows["partner"], rows["score"], strict=True):
                if partner not in basket:
                    totals[partner] = totals.get(partner, 0.0) + float(score)
        ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
        return ranked[:n]

    def save(self, directory: Path) -> None:
        """Write the partner table as JSON columns."""
        directory.mkdir(parents=True, exist_ok=True)
        columns = {name: self.partners[name].tolist() for name in PARTNER_COLUMNS}
        write_json(directory / "partners.json", columns)
        write_json(
            directory / "artifact.json",
            {"format": FBT_FORMAT, "format_version": 1, "params": self.params},
        )

    @classmethod
    def load(cls, directory: Path) -> FBTModel:
        """Read an artifact written by ``save``."""
        header = read_header(directory, FBT_FORMAT)
        columns = read_json(directory / "partners.json")
        return cls(pd.DataFrame(columns, columns=list(PARTNER_COLUMNS)), header.get("params", {}))


def train_fbt(
    co_purchases: pd.DataFrame,
    item_stats: pd.DataFrame | None = None,
    *,
    top_k: int = 10,
    min_orders: int = 2,
    total_orders: int | None = None,
    rank_by: RankBy = "lift",
) -> FBTModel:
    """Top-``top_k`` partners per product from ``co_purchases`` (product_a < product_b, orders).

    ``item_stats.purchases`` gives n_A; without it n_A is the sum of A's pair counts (an
    order with A and two other products counts twice), the closest the pairs can tell.
    """
    started = time.perf_counter()
    pairs = co_purchases[["product_a", "product_b", "orders"]].astype(
        {"product_a": str, "product_b": str}
    )
    pairs = pairs[pairs["orders"] > 0]
    # Each unordered pair feeds both directions: A's partners and B's partners.
    both = pd.concat(
        [
            pairs.rename(columns={"product_a": "product", "product_b": "partner"}),
            pairs.rename(columns={"product_b": "product", "product_a": "partner"}),
        ],
        ignore_index=True,
    )
    both = both.groupby(["product", "partner"], as_index=False)["orders"].sum()
    counts = _product_orders(both, item_stats)
    orders_total = float(total_orders) if total_orders else float(counts.sum()) or 1.0

    n_a = both["product"].map(counts).to_numpy(dtype=np.float64)
    n_b = both["partner"].map(counts).to_numpy(dtype=np.float64)
    n_ab = both["orders"].to_numpy(dtype=np.float64)
    # A product's order count can never be below its pair count (a stale item_stats row).
    n_a = np.maximum(np.nan_to_num(n_a), n_ab)
    n_b = np.maximum(np.nan_to_num(n_b), n_ab)
    both["support"] = n_ab / orders_total
    both["confidence"] = n_ab / n_a
    both["lift"] = n_ab * orders_total / (n_a * n_b)
    both["score"] = both[rank_by].astype(np.float64)
    kept = both[both["orders"] >= min_orders]
    ranked = kept.sort_values(
        ["product", "score", "orders", "partner"], ascending=[True, False, False, True]
    )
    top = ranked.groupby("product", sort=False).head(top_k).reset_index(drop=True)
    params: dict[str, Any] = {
        "trainer": "fbt",
        "top_k": top_k,
        "min_orders": min_orders,
        "rank_by": rank_by,
        "total_orders": total_orders,
        "orders_total_used": orders_total,
        "pairs": len(pairs),
        "fit_s": round(time.perf_counter() - started, 3),
    }
    return FBTModel(top[list(PARTNER_COLUMNS)], params)


def _product_orders(both: pd.DataFrame, item_stats: pd.DataFrame | None) -> pd.Series:
    """n_A per product: purchases from item_stats, else the sum of its pair counts."""
    if item_stats is not None and "purchases" in item_stats:
        stats = item_stats.astype({ITEM_COL: str}).groupby(ITEM_COL)["purchases"].sum()
        return stats.astype(np.float64)
    return both.groupby("product")["orders"].sum().astype(np.float64)


def load_co_purchases(settings: Settings) -> pd.DataFrame:
    """The gold co-purchase pairs from the lake."""
    from jobs.lake import table_store

    return table_store(settings).read(CO_PURCHASES_TABLE).to_pandas()
