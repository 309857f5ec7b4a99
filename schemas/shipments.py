"""Shipments domain (aggregate ``shipment``): carrier assignment and tracking updates."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import Address, Id, Timestamp
from schemas.spec import EventSpec

__all__ = ["SPECS", "ShipmentCreated", "ShipmentStatus", "ShipmentStatusChanged"]

ShipmentStatus = Literal[
    "label_created",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "delivery_failed",
    "returned_to_sender",
    "lost",
]


class ShipmentCreated(msgspec.Struct, frozen=True, kw_only=True):
    """shipment.created: a carrier was assigned to a fulfilment group and a label made."""

    shipment_id: Id
    order_id: Id
    fulfilment_group_id: Id
    seller_id: Id
    warehouse_id: Id
    carrier: Id
    service_level: Literal["standard", "express", "prime", "same_day"] = "standard"
    tracking_number: str | None = None
    line_ids: Annotated[list[Id], msgspec.Meta(min_length=1)]
    destination: Address
    estimated_delivery: Timestamp | None = None


class ShipmentStatusChanged(msgspec.Struct, frozen=True, kw_only=True):
    """shipment.status_changed: a carrier tracking update moved the shipment's status."""

    shipment_id: Id
    order_id: Id
    carrier: Id
    tracking_number: str | None = None
    old_status: ShipmentStatus | None = None
    new_status: ShipmentStatus
    location: str | None = None  # carrier-reported facility/city
    carrier_event_at: Timestamp | None = None  # carrier's clock; occurred_at is ours


SPECS = (
    EventSpec("shipment.created", 1, "shipments", "shipment", ShipmentCreated, "shipment_id"),
    EventSpec(
        "shipment.status_changed", 1, "shipments", "shipment", ShipmentStatusChanged, "shipment_id"
    ),
)
