"""Event builders shared by tests: small, valid events whose payload carries a sequence number."""

from __future__ import annotations

from schemas.envelope import Envelope
from schemas.registry import REGISTRY


def stock_adjusted(region: str, sku: str, n: int) -> Envelope:
    """The n-th receipt of ``sku``: ``on_hand_after`` is ``n``, so consumers can check order."""
    return REGISTRY.new_event(
        "stock.adjusted",
        {"sku": sku, "warehouse_id": "wh_1", "delta": 1, "on_hand_after": n},
        region=region,
    )
