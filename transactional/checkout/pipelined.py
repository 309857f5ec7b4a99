"""The checkout's hot-path unit of work: every slice's statements on one pipelined connection.

T1 (the key, the saga, the order, the pending payment, the stock holds and their events) and
T2 (the fenced saga, the payment, the stock sale, the paid order, the stored answer) are each
one commit of two round trips; the reads before them are one round trip. Each slice keeps
its own SQL (``<slice>/pipelined.py``); this module only puts them on one connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Self

from psycopg import Cursor
from psycopg.rows import dict_row

from transactional.catalog.pipelined import PipelinedCatalog
from transactional.checkout.model import CartClaim, Checkout, IdempotencyRecord, StoredResponse
from transactional.checkout.repository import (
    CART_CLAIM,
    CLAIM_CART,
    CLAIM_KEY,
    FINISH_KEY,
    GET_KEY,
    INSERT_CHECKOUT,
    RELEASE_CART,
    RENEW_LEASE,
    SAVE_CHECKOUT,
    checkout_row,
    finish_row,
    key_record,
    key_row,
)
from transactional.customers.pipelined import PipelinedAddresses
from transactional.inventory.pipelined import PipelinedStock
from transactional.ledger.pipelined import PipelinedLedger
from transactional.orders.pipelined import PipelinedOrders
from transactional.payments.pipelined import PipelinedPayments
from transactional.shared.outbox import Outbox
from transactional.shared.pipeline import (
    Deferred,
    PipelinedUnitOfWork,
    PooledConnection,
    Row,
    pyformat,
)

_INSERT_CHECKOUT = pyformat(INSERT_CHECKOUT)
_SAVE_CHECKOUT = pyformat(SAVE_CHECKOUT)
_RENEW = pyformat(RENEW_LEASE)
_CLAIM_KEY = pyformat(CLAIM_KEY)
_GET_KEY = pyformat(GET_KEY)
_FINISH_KEY = pyformat(FINISH_KEY)
_CLAIM_CART = pyformat(CLAIM_CART)
_CART_CLAIM = pyformat(CART_CLAIM)
_RELEASE_CART = pyformat(RELEASE_CART)


def _scalar(cursor: Cursor[Row]) -> str | None:
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def _count(cursor: Cursor[Row]) -> int:
    row = cursor.fetchone()
    return 0 if row is None else int(row[0])


class PipelinedCheckouts:
    """Sagas, queued; writes after the first are fenced by the writer's lease."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def add(self, checkout: Checkout) -> None:
        """Insert a new saga."""
        self._uow.execute(_INSERT_CHECKOUT, checkout_row(checkout))

    def save(self, checkout: Checkout, owner: str) -> Deferred[int]:
        """Write the saga if ``owner`` still holds its lease: 1, else 0 (roll back)."""
        return self._uow.execute(_SAVE_CHECKOUT, {**checkout_row(checkout), "owner": owner})

    def renew(self, checkout_id: str, owner: str, until: datetime) -> Deferred[int]:
        """Extend ``owner``'s lease of the pending saga to ``until``: 1, or 0 if it is no
        longer theirs."""
        return self._uow.execute(_RENEW, {"id": checkout_id, "owner": owner, "until": until})


class PipelinedKeys:
    """Idempotency keys, queued."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def get(self, customer_id: str, key: str) -> Deferred[IdempotencyRecord | None]:
        """A customer's key, or None."""

        def read(cursor: Cursor[Row]) -> IdempotencyRecord | None:
            row = cursor.fetchone()
            return None if row is None else key_record(row)  # type: ignore[arg-type]

        cursor = self._uow.connection.cursor(row_factory=dict_row)
        cursor.execute(_GET_KEY, {"customer_id": customer_id, "key": key})
        return Deferred(cursor, read)

    def claim(self, record: IdempotencyRecord) -> Deferred[str | None]:
        """Insert the key (or take over an expired one): its checkout id if claimed, None if
        a live key is there (roll back and answer from it)."""
        return self._uow.query(_CLAIM_KEY, key_row(record), _scalar)

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        """Store the final response of the key's request."""
        self._uow.execute(_FINISH_KEY, finish_row(customer_id, key, checkout_id, response))


def _claim(cursor: Cursor[Row]) -> CartClaim | None:
    row = cursor.fetchone()
    return None if row is None else CartClaim(row[0], row[1])


class PipelinedCartClaims:
    """Which checkout holds a cart, queued: one checkout at a time per cart, and a bought
    cart bought once."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def state(self, cart_id: str) -> Deferred[CartClaim | None]:
        """The cart's claim row, if it ever had one."""
        return self._uow.query(_CART_CLAIM, {"cart_id": cart_id}, _claim)

    def claim(
        self, cart_id: str, checkout_id: str, seen_order: str | None, at: datetime
    ) -> Deferred[str | None]:
        """Hold the cart if free and not bought since ``seen_order``: its id, else None."""
        params = {"cart_id": cart_id, "checkout_id": checkout_id, "seen": seen_order, "at": at}
        return self._uow.query(_CLAIM_CART, params, _scalar)

    def release(self, cart_id: str, checkout_id: str, bought: str | None = None) -> None:
        """Free the cart if ``checkout_id`` holds it."""
        params = {"cart_id": cart_id, "checkout_id": checkout_id, "bought": bought}
        self._uow.execute(_RELEASE_CART, params)


class PipelinedCheckoutUnitOfWork(PipelinedUnitOfWork):
    """The hot path's unit of work, with every slice's pipelined repository attached."""

    checkouts: PipelinedCheckouts
    keys: PipelinedKeys
    claims: PipelinedCartClaims
    catalog: PipelinedCatalog
    addresses: PipelinedAddresses
    stock: PipelinedStock
    orders: PipelinedOrders
    payments: PipelinedPayments
    ledger: PipelinedLedger

    def __init__(self, connect: Callable[[], PooledConnection], outbox: Outbox) -> None:
        super().__init__(connect, outbox)
        self.checkouts = PipelinedCheckouts(self)
        self.keys = PipelinedKeys(self)
        self.claims = PipelinedCartClaims(self)
        self.catalog = PipelinedCatalog(self)
        self.addresses = PipelinedAddresses(self)
        self.stock = PipelinedStock(self)
        self.orders = PipelinedOrders(self)
        self.payments = PipelinedPayments(self)
        self.ledger = PipelinedLedger(self)

    def __enter__(self) -> Self:
        super().__enter__()
        return self
