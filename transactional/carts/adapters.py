"""Adapters of the cart's ports onto the other slices' services (wired in ``souk.services``)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from transactional.carts.model import Offer, ShelfView
from transactional.catalog.pipelined import PipelinedCatalog
from transactional.customers.service import CustomerService
from transactional.inventory.pipelined import PipelinedStock
from transactional.shared.errors import NotFound
from transactional.shared.outbox import Outbox
from transactional.shared.pipeline import PipelinedUnitOfWork, PooledConnection


class PipelinedShelf:
    """The cart's Shelf: the catalog's offers and inventory's availability in one round trip
    (both slices' own statements, on one pipelined connection)."""

    def __init__(self, connect: Callable[[], PooledConnection], outbox: Outbox) -> None:
        self._connect = connect
        self._outbox = outbox

    def look(self, skus: Collection[str]) -> ShelfView:
        """Offers and availability of ``skus``."""
        wanted = sorted({sku for sku in skus if sku})
        if not wanted:
            return ShelfView({}, {})
        with PipelinedUnitOfWork(self._connect, self._outbox) as uow:
            offers = PipelinedCatalog(uow).offers(wanted)
            availability = PipelinedStock(uow).availability(wanted)
            uow.sync()
        return ShelfView(
            {
                sku: Offer(
                    sku=offer.sku,
                    product_id=offer.product_id,
                    seller_id=offer.seller_id,
                    title=offer.title,
                    status=offer.status,
                    prices=dict(offer.prices),
                )
                for sku, offer in offers.get().items()
            },
            availability.get(),
        )


def customer_currency_of(customers: Callable[[], CustomerService]) -> Callable[[str], str | None]:
    """The customer's currency via ``CustomerService.get`` (looked up lazily: it is built later)."""

    def currency(customer_id: str) -> str | None:
        try:
            return customers().get(customer_id).currency
        except NotFound:
            return None

    return currency
