"""Request and response bodies of the inventory API (msgspec structs at the edge)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import CountryCode, RegionCode
from transactional.inventory.model import MAX_UNITS, Warehouse
from transactional.inventory.service import StockView

Units = Annotated[int, msgspec.Meta(ge=0, le=MAX_UNITS)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SetOnHand(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PUT /v1/inventory/{sku}/warehouses/{warehouse_id}: the counted units on the shelf."""

    on_hand: Units
    reason: Literal["receipt", "cycle_count", "damage", "correction", "manual"] = "cycle_count"


class WarehouseIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PUT /v1/admin/warehouses/{warehouse_id}."""

    region: RegionCode
    country: CountryCode
    name: Text


class WarehouseOut(msgspec.Struct, kw_only=True):
    """A warehouse."""

    warehouse_id: str
    region: str
    country: str
    name: str

    @classmethod
    def of(cls, warehouse: Warehouse) -> WarehouseOut:
        """The response body of a domain warehouse."""
        return cls(
            warehouse_id=warehouse.warehouse_id,
            region=warehouse.region,
            country=warehouse.country,
            name=warehouse.name,
        )


class WarehouseStockOut(msgspec.Struct, kw_only=True):
    """One warehouse's units of a SKU."""

    warehouse_id: str
    region: str
    on_hand: int
    reserved: int
    available: int


class StockOut(msgspec.Struct, kw_only=True):
    """A SKU's stock per warehouse and in total."""

    sku: str
    warehouses: list[WarehouseStockOut]
    on_hand: int
    reserved: int
    available: int

    @classmethod
    def of(cls, view: StockView) -> StockOut:
        """The response body of a stock view."""
        return cls(
            sku=view.sku,
            warehouses=[
                WarehouseStockOut(
                    warehouse_id=w.warehouse_id,
                    region=w.region,
                    on_hand=w.on_hand,
                    reserved=w.reserved,
                    available=w.available,
                )
                for w in view.warehouses
            ],
            on_hand=view.on_hand,
            reserved=view.reserved,
            available=view.available,
        )
