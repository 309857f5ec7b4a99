"""HTTP controller of billing: an order's invoice (or credit notes) as a PDF."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from transactional.billing.service import BillingService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject

PDF = "application/pdf"


class InvoiceController(Controller):
    """/v1/orders/{order_id}/invoice: the order's invoices as PDF."""

    path = "/v1/orders"
    tags = ("billing",)

    @get(
        "/{order_id:str}/invoice",
        sync_to_thread=True,
        media_type=PDF,
        responses={200: ResponseSpec(None, description="The PDF", media_type=PDF)},
    )
    def invoice(
        self,
        order_id: FromPath[str],
        principal: Inject[Principal],
        billing: Inject[BillingService],
        seller_id: Annotated[str | None, QueryParameter(min_length=1, max_length=128)] = None,
        kind: Annotated[
            Literal["invoice", "credit_note"],
            QueryParameter(description="invoice (default) or credit_note (the order's refunds)"),
        ] = "invoice",
    ) -> Response[bytes]:
        """The order's invoice as a PDF: every seller's (a page each) or ``seller_id``'s;
        ``kind=credit_note`` gives its credit notes. The buyer's or an admin's; 404 before
        the order is paid and invoiced."""
        content, documents = billing.pdf(order_id, principal, seller_id=seller_id, kind=kind)
        name = documents[0].number if len(documents) == 1 else f"{order_id}-{kind}"
        return Response(
            content,
            media_type=PDF,
            headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
        )


ROUTES = [InvoiceController]
