"""HTTP controllers of the returns slice: customers ask, the returns desk decides, receives
and refunds."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from transactional.returns.dto import (
    Decision,
    ReceiveReturn,
    RefundIn,
    RequestReturn,
    ReturnOut,
    ReturnPageOut,
)
from transactional.returns.service import MAX_PAGE_SIZE, ReturnService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


class OrderReturnsController(Controller):
    """/v1/orders/{order_id}/returns: a customer asks to return units of a delivered order."""

    path = "/v1/orders"
    tags = ("returns",)

    @post("/{order_id:str}/returns", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def request_return(
        self,
        order_id: FromPath[str],
        data: JSONBody[RequestReturn],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """Ask to return units of one's delivered order within each line's return window;
        422 outside it or for more units than bought, 404 for another's order."""
        ret = returns.request(
            principal.customer_id,
            order_id,
            [line.asked() for line in data.lines],
            data.comment,
        )
        return ReturnOut.of(ret)


class ReturnsController(Controller):
    """/v1/returns: the caller's returns, and the returns desk's decisions."""

    path = "/v1/returns"
    tags = ("returns",)

    @get("/", sync_to_thread=True)
    def mine(
        self,
        principal: Inject[Principal],
        returns: Inject[ReturnService],
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 20,
    ) -> ReturnPageOut:
        """The caller's returns, newest first."""
        return ReturnPageOut.of(returns.mine(principal.customer_id, page, page_size))

    @get("/{return_id:str}", sync_to_thread=True)
    def read(
        self,
        return_id: FromPath[str],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """A return (its customer's, its sellers', or any for an admin; else 404)."""
        return ReturnOut.of(returns.get(return_id, principal))

    @post("/{return_id:str}/approve", status_code=HTTP_200_OK, sync_to_thread=True)
    def approve(
        self,
        return_id: FromPath[str],
        data: JSONBody[Decision],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """Accept a requested return (the seller of every line, or an admin)."""
        return ReturnOut.of(returns.approve(return_id, principal, data.note))

    @post("/{return_id:str}/reject", status_code=HTTP_200_OK, sync_to_thread=True)
    def reject(
        self,
        return_id: FromPath[str],
        data: JSONBody[Decision],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """Refuse a requested return (the seller of every line, or an admin)."""
        return ReturnOut.of(returns.reject(return_id, principal, data.note))

    @post("/{return_id:str}/receive", status_code=HTTP_200_OK, sync_to_thread=True)
    def receive(
        self,
        return_id: FromPath[str],
        data: JSONBody[ReceiveReturn],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """Record the parcel with each line's inspection: resellable units back on sale,
        damaged ones to the damaged bucket; refunded at once when refunds are automatic."""
        inspections = [line.inspection() for line in data.lines]
        return ReturnOut.of(returns.receive(return_id, principal, inspections))

    @post("/{return_id:str}/refund", status_code=HTTP_200_OK, sync_to_thread=True)
    def refund(
        self,
        return_id: FromPath[str],
        data: JSONBody[RefundIn],
        principal: Inject[Principal],
        returns: Inject[ReturnService],
    ) -> ReturnOut:
        """Issue (or finish) a received return's refund (admins); 422
        ``refund_exceeds_captured``, nothing booked, over what is left of the capture."""
        return ReturnOut.of(returns.refund(return_id, principal, data.amount_minor))


ROUTES = [OrderReturnsController, ReturnsController]
