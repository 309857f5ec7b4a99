"""The events stock movements emit (pure; no I/O). Each is keyed by SKU, in the warehouse's
region."""

from __future__ import annotations

from typing import cast

from schemas.envelope import Envelope
from schemas.inventory import StockCommitted, StockReleased, StockReserved
from schemas.registry import REGISTRY
from transactional.inventory.model import ReleaseReason, Reservation, StockMove


def reserved_event(reservation: Reservation, available_after: int) -> Envelope:
    """stock.reserved: units held for a checkout until the reservation expires."""
    return REGISTRY.new_event(
        "stock.reserved",
        StockReserved(
            reservation_id=reservation.reservation_id,
            sku=reservation.sku,
            warehouse_id=reservation.warehouse_id,
            quantity=reservation.quantity,
            checkout_id=reservation.checkout_id,
            expires_at=reservation.expires_at,
            available_after=available_after,
        ),
        region=reservation.region,
    )


def committed_event(move: StockMove, order_id: str) -> Envelope:
    """stock.committed: held units sold to an order (``move.after`` = on hand)."""
    return REGISTRY.new_event(
        "stock.committed",
        StockCommitted(
            reservation_id=move.reservation_id,
            sku=move.sku,
            warehouse_id=move.warehouse_id,
            quantity=move.quantity,
            order_id=order_id,
            on_hand_after=move.after,
        ),
        region=move.region,
    )


def released_event(move: StockMove, reason: str, order_id: str | None = None) -> Envelope:
    """stock.released: held units back on sale (``move.after`` = available)."""
    return REGISTRY.new_event(
        "stock.released",
        StockReleased(
            reservation_id=move.reservation_id,
            sku=move.sku,
            warehouse_id=move.warehouse_id,
            quantity=move.quantity,
            reason=cast(ReleaseReason, reason),  # checked by the callers
            order_id=order_id,
            available_after=move.after,
        ),
        region=move.region,
    )
