"""The catalog slice's reads for a pipelined unit of work (the checkout's hot path)."""

from __future__ import annotations

from collections.abc import Collection

from psycopg import Cursor

from transactional.catalog.model import SkuOffer
from transactional.catalog.repository import OFFERS
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, Row, pyformat

_OFFERS = pyformat(OFFERS)


def _offers(cursor: Cursor[Row]) -> dict[str, SkuOffer]:
    return {
        sku: SkuOffer(
            sku=sku,
            product_id=product_id,
            seller_id=seller_id,
            title=title,
            status=status,
            prices={str(c): int(a) for c, a in prices.items()},
            category_id=category_id,
        )
        for sku, product_id, seller_id, title, status, prices, category_id in cursor.fetchall()
    }


class PipelinedCatalog:
    """SKU offers, queued on a pipelined unit of work."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def offers(self, skus: Collection[str]) -> Deferred[dict[str, SkuOffer]]:
        """The offer of each existing SKU among ``skus`` (unknown SKUs are absent)."""
        if not skus:
            return Deferred.of({})
        return self._uow.query(_OFFERS, {"skus": sorted(skus)}, _offers)
