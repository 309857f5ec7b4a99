"""Stock invariants after a run: seeded units against PostgreSQL's stock levels and orders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class StockAudit:
    """Seeded stock against what PostgreSQL holds now and what live orders sold."""

    skus: int
    seeded: int  # units seeded
    on_hand: int  # units on hand now
    reserved: int  # units held by open reservations now
    sold: int  # units on orders that are neither cancelled nor returned, less returned units
    invalid: list[str]  # SKUs with a negative count or more reserved than on hand
    oversold: dict[str, int]  # SKU → units sold (or returned damaged) beyond what was seeded
    drift: dict[str, int]  # SKU → (units gone from stock) - (units on live orders)

    @property
    def ok(self) -> bool:
        """Nothing oversold, no count negative or inconsistent."""
        return not self.invalid and not self.oversold


def audit_stock(engine: Engine, seeded: Mapping[str, int]) -> StockAudit:
    """Compare the seeded units of each SKU with PostgreSQL's stock levels and order lines."""
    skus = sorted(seeded)
    with engine.connect() as connection:
        levels = {
            row.sku: row
            for row in connection.execute(
                text(
                    "SELECT sku, sum(on_hand) AS on_hand, sum(reserved) AS reserved, "
                    "bool_or(on_hand < 0 OR reserved < 0 OR reserved > on_hand) AS invalid "
                    "FROM stock_levels WHERE sku = ANY(:skus) GROUP BY sku"
                ),
                {"skus": skus},
            )
        }
        sold: dict[str, int] = {
            row.sku: int(row.units)
            for row in connection.execute(
                text(
                    "SELECT l.sku, sum(l.quantity) AS units FROM order_lines AS l "
                    "JOIN orders AS o USING (region, order_id) WHERE l.sku = ANY(:skus) "
                    "AND o.status NOT IN ('cancelled', 'returned') GROUP BY l.sku"
                ),
                {"skus": skus},
            )
        }
        # Units a return took back from a live order (a partial return leaves it delivered):
        # resellable ones are on hand again, damaged ones left stock for the damaged bucket.
        returned: dict[str, tuple[int, int]] = {
            row.sku: (int(row.live or 0), int(row.damaged or 0))
            for row in connection.execute(
                text(
                    "SELECT r.sku, sum(r.resellable + r.damaged) FILTER (WHERE o.status NOT IN "
                    "('cancelled', 'returned')) AS live, sum(r.damaged) AS damaged "
                    "FROM stock_returns AS r JOIN orders AS o ON o.order_id = r.order_id "
                    "WHERE r.sku = ANY(:skus) GROUP BY r.sku"
                ),
                {"skus": skus},
            )
        }
    for sku, (live, _) in returned.items():
        sold[sku] = sold.get(sku, 0) - live
    damaged = {sku: d for sku, (_, d) in returned.items()}
    on_hand = {sku: int(levels[sku].on_hand) if sku in levels else 0 for sku in skus}
    # Gone from stock: what live orders hold, plus what came back damaged.
    gone = {sku: sold.get(sku, 0) + damaged.get(sku, 0) for sku in skus}
    drift = {
        sku: (seeded[sku] - on_hand[sku]) - gone[sku]
        for sku in skus
        if seeded[sku] - on_hand[sku] != gone[sku]
    }
    return StockAudit(
        skus=len(skus),
        seeded=sum(seeded.values()),
        on_hand=sum(on_hand.values()),
        reserved=sum(int(row.reserved) for row in levels.values()),
        sold=sum(sold.values()),
        invalid=sorted(sku for sku, row in levels.items() if row.invalid),
        oversold={sku: gone[sku] - seeded[sku] for sku in skus if gone[sku] > seeded[sku]},
        drift=drift,
    )
