"""HTTP controllers of the checkout slice: run the saga (idempotently) and read its state."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from serving.problems import PROBLEM_JSON
from transactional.checkout.dto import CheckoutIn, CheckoutOut, CheckoutResult, ClientNetworks
from transactional.checkout.model import check_idempotency_key
from transactional.checkout.service import CheckoutService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject

REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Required. A unique key per checkout attempt (e.g. a UUID); retries with "
        "the same key and body get the first response back; keys live 24 hours.",
    ),
]

DeviceId = Annotated[
    str | None,
    HeaderParameter(
        name="X-Device-Id",
        required=False,
        description="Optional. The client's stable device id, 1-128 characters of letters, "
        "digits and . _ : - (400 otherwise); used for fraud scoring.",
    ),
]


class CheckoutController(Controller):
    """/v1/checkout: turn the caller's cart into a paid order."""

    path = "/v1/checkout"
    tags = ("checkout",)

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        responses={HTTP_201_CREATED: ResponseSpec(CheckoutResult, description="A paid order.")},
    )
    def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CheckoutIn],
        principal: Inject[Principal],
        checkout: Inject[CheckoutService],
        client_networks: Inject[ClientNetworks],
        idempotency_key: IdempotencyKey = None,
        device_id: DeviceId = None,
    ) -> Response[dict[str, Any]]:
        """Reserve stock, place the order, take the payment; 409 out of stock, 402 declined,
        422 invalid cart (the problem's ``step`` names the failed step), 400 for a malformed
        ``X-Device-Id``. The device and the client's address (``X-Forwarded-For`` only from a
        trusted proxy) go into ``checkout.started``."""
        key = check_idempotency_key(idempotency_key)
        peer = request.client.host if request.client is not None else None
        forwarded = ",".join(request.headers.getall("x-forwarded-for", []))
        context = client_networks.context(peer, forwarded or None, device_id)
        reply = checkout.checkout(principal, data.to_domain(context), key)
        stored = reply.response
        headers = {"Location": f"{self.path}/{reply.checkout_id}"}
        if reply.replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(
            stored.body,
            status_code=stored.status,
            media_type=PROBLEM_JSON if stored.status >= 400 else "application/json",
            headers=headers,
        )

    @get("/{checkout_id:str}", sync_to_thread=True)
    def show(
        self,
        checkout_id: FromPath[str],
        principal: Inject[Principal],
        checkout: Inject[CheckoutService],
    ) -> CheckoutOut:
        """The caller's checkout: its stage, each step's outcome, the order and payment."""
        return CheckoutOut.of(checkout.get(checkout_id, principal.customer_id))


ROUTES = [CheckoutController]
