"""HTTP controllers of the order slice: a customer's orders, cancelling, and admin transitions."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from transactional.orders.dto import (
    CancelOrder,
    MoveOrder,
    OrderOut,
    OrderPageOut,
    ReviewOrder,
    TransitionOut,
)
from transactional.orders.model import HeldOrderReviews
from transactional.orders.service import MAX_PAGE_SIZE, OrderService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


def _owner(principal: Principal) -> str | None:
    """Whose orders the caller may see: its own, or any for an admin."""
    return None if principal.is_admin else principal.customer_id


class OrderController(Controller):
    """/v1/orders: the caller's orders."""

    path = "/v1/orders"
    tags = ("orders",)

    @get("/", sync_to_thread=True)
    def mine(
        self,
        principal: Inject[Principal],
        orders: Inject[OrderService],
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 20,
    ) -> OrderPageOut:
        """The caller's orders, newest first, with the total count."""
        return OrderPageOut.of(orders.list_for(principal.customer_id, page, page_size))

    @get("/{order_id:str}", sync_to_thread=True)
    def read(
        self, order_id: FromPath[str], principal: Inject[Principal], orders: Inject[OrderService]
    ) -> OrderOut:
        """One of the caller's orders (another customer's is 404)."""
        return OrderOut.of(orders.get(order_id, _owner(principal)))

    @get("/{order_id:str}/transitions", sync_to_thread=True)
    def history(
        self, order_id: FromPath[str], principal: Inject[Principal], orders: Inject[OrderService]
    ) -> list[TransitionOut]:
        """The order's state changes, oldest first, with time, cause and actor."""
        return [TransitionOut.of(t) for t in orders.transitions(order_id, _owner(principal))]

    @post("/{order_id:str}/cancel", status_code=HTTP_200_OK, sync_to_thread=True)
    def cancel(
        self,
        order_id: FromPath[str],
        data: JSONBody[CancelOrder],
        principal: Inject[Principal],
        orders: Inject[OrderService],
    ) -> OrderOut:
        """Cancel a paid order (refunded); 409 while its checkout runs or once it is packed."""
        order = orders.cancel(
            order_id,
            f"customer:{principal.customer_id}",
            "customer_request",
            principal.customer_id,
            note=data.reason,
        )
        return OrderOut.of(order)


class AdminOrderController(Controller):
    """/v1/admin/orders: moving orders through fulfilment (admin tokens only)."""

    path = "/v1/admin/orders"
    tags = ("admin",)

    @post("/{order_id:str}/transitions", status_code=HTTP_200_OK, sync_to_thread=True)
    def move(
        self,
        order_id: FromPath[str],
        data: JSONBody[MoveOrder],
        principal: Inject[Principal],
        orders: Inject[OrderService],
    ) -> OrderOut:
        """Move an order to packed, shipped, delivered, returned or cancelled (409 if illegal)."""
        principal.require_admin()
        order = orders.transition(
            order_id, data.to, data.cause, f"admin:{principal.customer_id}", note=data.note
        )
        return OrderOut.of(order)

    @post("/{order_id:str}/review", status_code=HTTP_200_OK, sync_to_thread=True)
    def review(
        self,
        order_id: FromPath[str],
        data: Annotated[
            ReviewOrder,
            Body(
                examples=[
                    Example(summary="approve", value={"decision": "approve"}),
                    Example(
                        summary="reject",
                        value={"decision": "reject", "note": "card reported stolen"},
                    ),
                ]
            ),
        ],
        principal: Inject[Principal],
        orders: Inject[OrderService],
        order_reviews: Inject[HeldOrderReviews],
    ) -> OrderOut:
        """Settle an order on hold for a fraud review: approve captures its payment (paid),
        reject voids it and cancels the order; 409 ``order_not_on_hold`` otherwise."""
        principal.require_admin()
        held = orders.get(order_id)
        order_reviews.review_held(
            held.checkout_id, data.decision == "approve", f"admin:{principal.customer_id}"
        )
        return OrderOut.of(orders.get(order_id))


ROUTES = [OrderController, AdminOrderController]
