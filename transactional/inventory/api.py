"""HTTP controllers of the inventory slice: stock per SKU and warehouse, and warehouses."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from transactional.inventory.dto import SetOnHand, StockOut, WarehouseIn, WarehouseOut
from transactional.inventory.model import Warehouse
from transactional.inventory.service import InventoryService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


class InventoryController(Controller):
    """/v1/inventory: stock levels (public reads, seller/admin counts)."""

    path = "/v1/inventory"
    tags = ("inventory",)

    @get("/{sku:str}", sync_to_thread=True)
    def stock(self, sku: FromPath[str], inventory: Inject[InventoryService]) -> StockOut:
        """A SKU's on-hand, reserved and available units per warehouse and in total."""
        return StockOut.of(inventory.stock(sku))

    @put("/{sku:str}/warehouses/{warehouse_id:str}", sync_to_thread=True)
    def set_on_hand(
        self,
        sku: FromPath[str],
        warehouse_id: FromPath[str],
        data: JSONBody[SetOnHand],
        principal: Inject[Principal],
        inventory: Inject[InventoryService],
    ) -> StockOut:
        """Set the counted on-hand units of a SKU in a warehouse (its seller or an admin)."""
        view = inventory.set_on_hand(
            sku, warehouse_id, data.on_hand, actor=principal, reason=data.reason
        )
        return StockOut.of(view)


class WarehouseController(Controller):
    """/v1/warehouses and /v1/admin/warehouses: where stock is kept."""

    path = "/v1"
    tags = ("warehouses",)

    @get("/warehouses", sync_to_thread=True)
    def warehouses(self, inventory: Inject[InventoryService]) -> list[WarehouseOut]:
        """Every warehouse with its region and country."""
        return [WarehouseOut.of(w) for w in inventory.warehouses()]

    @put("/admin/warehouses/{warehouse_id:str}", sync_to_thread=True)
    def put_warehouse(
        self,
        warehouse_id: FromPath[str],
        data: JSONBody[WarehouseIn],
        principal: Inject[Principal],
        inventory: Inject[InventoryService],
    ) -> WarehouseOut:
        """Create or update a warehouse (admins only)."""
        warehouse = inventory.put_warehouse(
            principal,
            Warehouse(
                warehouse_id=warehouse_id, region=data.region, country=data.country, name=data.name
            ),
        )
        return WarehouseOut.of(warehouse)


ROUTES = [InventoryController, WarehouseController]
