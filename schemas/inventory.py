"""Inventory domain (aggregate ``stock``, aggregate id = SKU): per-warehouse stock movements.

Keying by SKU keeps every movement of one SKU in one partition, in order, which the
Redis stock projection relies on. Reservations model checkout holds and deal slots.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.common import Id, NonNegativeInt, Quantity, Timestamp
from schemas.spec import EventSpec

__all__ = ["SPECS", "StockAdjusted", "StockCommitted", "StockReleased", "StockReserved"]


class StockAdjusted(msgspec.Struct, frozen=True, kw_only=True):
    """stock.adjusted: on-hand stock changed outside the reservation flow."""

    sku: Id
    warehouse_id: Id
    delta: int  # signed: + receipt/restock, - damage/shrinkage
    on_hand_after: NonNegativeInt
    available_after: NonNegativeInt | None = None  # on hand minus open reservations
    reason: Literal[
        "receipt",
        "cycle_count",
        "damage",
        "return_restock",
        "correction",
        "manual",
        "order_cancelled",  # units of a cancelled order back on the shelf
    ] = "manual"
    reference_id: Id | None = None  # PO, return or count id that caused it

    def __post_init__(self) -> None:
        if self.delta == 0:
            raise ValueError("stock.adjusted delta must be non-zero")


class StockReserved(msgspec.Struct, frozen=True, kw_only=True):
    """stock.reserved: units held for a checkout (or a lightning-deal slot) until expiry."""

    reservation_id: Id
    sku: Id
    warehouse_id: Id
    quantity: Quantity
    checkout_id: Id
    order_id: Id | None = None
    deal_id: Id | None = None
    expires_at: Timestamp
    available_after: NonNegativeInt | None = None


class StockReleased(msgspec.Struct, frozen=True, kw_only=True):
    """stock.released: a reservation was given back (expired, abandoned, failed, cancelled)."""

    reservation_id: Id
    sku: Id
    warehouse_id: Id
    quantity: Quantity
    reason: Literal["expired", "checkout_abandoned", "payment_failed", "order_cancelled", "manual"]
    order_id: Id | None = None
    available_after: NonNegativeInt | None = None


class StockCommitted(msgspec.Struct, frozen=True, kw_only=True):
    """stock.committed: a reservation became a sale (on-hand decremented for an order)."""

    reservation_id: Id
    sku: Id
    warehouse_id: Id
    quantity: Quantity
    order_id: Id
    on_hand_after: NonNegativeInt | None = None


SPECS = (
    EventSpec("stock.adjusted", 1, "inventory", "stock", StockAdjusted, "sku"),
    EventSpec("stock.reserved", 1, "inventory", "stock", StockReserved, "sku"),
    EventSpec("stock.released", 1, "inventory", "stock", StockReleased, "sku"),
    EventSpec("stock.committed", 1, "inventory", "stock", StockCommitted, "sku"),
)
