"""The order slice's statements for a pipelined unit of work (the checkout's hot path).

The same tables, statements and rows as :mod:`transactional.orders.repository`; a save can
be made conditional on the status the order had when it was read, so a cancel that began
meanwhile makes the caller's transaction roll back instead of being overwritten.
"""

from __future__ import annotations

from psycopg import Cursor

from transactional.orders.model import Order, OrderStatus
from transactional.orders.repository import (
    CLAIM_CHECKOUT,
    INSERT_GROUP,
    INSERT_LINE,
    INSERT_ORDER,
    INSERT_TRANSITIONS,
    UPDATE_GROUP,
    UPDATE_ORDER,
    claim_row,
    group_rows,
    line_rows,
    order_row,
    transition_rows,
)
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, Row, pyformat

_CLAIM = pyformat(CLAIM_CHECKOUT)
_INSERT_ORDER = pyformat(INSERT_ORDER)
_INSERT_LINE = pyformat(INSERT_LINE)
_INSERT_GROUP = pyformat(INSERT_GROUP)
_UPDATE_GROUP = pyformat(UPDATE_GROUP)
_INSERT_TRANSITIONS = pyformat(INSERT_TRANSITIONS)
# Only if the order still has the status it was read with and no cancel or return began.
_UPDATE_IF = pyformat(UPDATE_ORDER + " AND status = :expected AND pending_status IS NULL")
_PAYABLE = pyformat(
    "SELECT status = 'placed' AND pending_status IS NULL FROM orders "
    "WHERE region = :region AND order_id = :order_id"
)


def _true(cursor: Cursor[Row]) -> bool:
    row = cursor.fetchone()
    return bool(row is not None and row[0])


class PipelinedOrders:
    """Orders, lines, fulfilment groups and transitions, queued on a pipelined unit of work."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def add(self, order: Order) -> Deferred[int]:
        """Claim the checkout and insert the order with its placement; 1 if the checkout had
        no order yet (0: roll back, someone placed it first)."""
        claimed = self._uow.execute(_CLAIM, claim_row(order))
        self._uow.execute(_INSERT_ORDER, order_row(order))
        self._uow.execute_many(_INSERT_LINE, line_rows(order))
        self._uow.execute_many(_INSERT_GROUP, group_rows(order))
        self._transitions(order)
        return claimed

    def save_if(self, order: Order, expected: OrderStatus) -> Deferred[int]:
        """Write back the order if it is still ``expected`` with nothing pending; 1 if it
        was (0: roll back, the order moved meanwhile)."""
        saved = self._uow.execute(_UPDATE_IF, {**order_row(order), "expected": expected})
        self._uow.execute_many(_UPDATE_GROUP, group_rows(order))
        self._transitions(order)
        return saved

    def payable(self, order: Order) -> Deferred[bool]:
        """Whether the order still awaits its payment (placed, no cancel begun)."""
        return self._uow.query(
            _PAYABLE, {"region": order.region, "order_id": order.order_id}, _true
        )

    def _transitions(self, order: Order) -> None:
        if order.history:
            self._uow.execute(_INSERT_TRANSITIONS, transition_rows(order))
