"""``POST /v1/fraud/score``: the fraud scorer over HTTP, for the fraud service (service or
admin tokens)."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Controller, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK

from serving.fraud.schemas import ScoreIn, ScoreOut
from serving.fraud.service import FraudScorer
from transactional.checkout.dto import ClientNetworks
from transactional.shared.auth import ADMIN, SERVICE, Principal
from transactional.shared.errors import Forbidden
from transactional.shared.http import Inject
from transactional.shared.regions import region_of_ip

#: The role of the fraud service's own tokens (``admin`` tokens may score too).
SERVICE_ROLE = SERVICE

REQUEST_EXAMPLES = [
    Example(
        summary="a burst from a new account shipping abroad",
        value={
            "customer_id": "cus_01JEXAMPLE0000000000000000",
            "amount_minor": 129900,
            "currency": "EUR",
            "items": [{"sku": "sku_laptop_14", "quantity": 1, "unit_price_minor": 129900}],
            "payment_instrument": "card_5f1c0e7a9b2d4c3e8f60718293a4b5c6",
            "device_id": "dev-7f3a9c",
            "client_ip": "10.2.14.7",
            "shipping_country": "IN",
        },
    ),
    Example(
        summary="the minimum",
        value={
            "customer_id": "cus_01JEXAMPLE0000000000000000",
            "amount_minor": 2500,
            "currency": "EUR",
        },
    ),
]
RESPONSE_EXAMPLE = Example(
    summary="review: two rules fired",
    value={
        "score": 0.6975,
        "decision": "review",
        "reasons": {
            "rules": ["ship_region_mismatch", "ip_region_mismatch"],
            "model_features": [
                {"feature": "total_minor", "value": 129900.0, "contribution": 0.21},
            ],
            "signals_available": True,
        },
        "rules_score": 0.6975,
        "model_score": 0.41,
        "model_version": "20261207T021500Z",
        "features": {"orders_1m": 1, "ship_region_mismatch": 1, "ip_region_mismatch": 1},
        "thresholds": {"review": 0.65, "decline": 0.9},
        "took_ms": 1.9,
    },
)


def require_scorer_role(principal: Principal) -> None:
    """Forbidden (403) unless the caller holds a service or admin token."""
    if not ({SERVICE_ROLE, ADMIN} & principal.roles):
        raise Forbidden("fraud scoring needs a service or admin token (`souk token --admin`)")


class FraudController(Controller):
    """/v1/fraud: score a payment attempt."""

    path = "/v1/fraud"
    tags = ("fraud",)

    @post(
        "/score",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses={
            HTTP_200_OK: ResponseSpec(
                ScoreOut, description="The score and decision.", examples=[RESPONSE_EXAMPLE]
            )
        },
    )
    def score(
        self,
        data: Annotated[ScoreIn, Body(examples=REQUEST_EXAMPLES)],
        principal: Inject[Principal],
        fraud_scorer: Inject[FraudScorer],
        client_networks: Inject[ClientNetworks],
    ) -> ScoreOut:
        """Score a payment attempt: 0..1, approve | review | decline (thresholds from the
        settings), the rules that fired and the model's top features; 422 for bad input."""
        require_scorer_role(principal)
        started = time.perf_counter()
        request = data.to_domain(lambda ip: region_of_ip(ip, client_networks.ip_regions))
        assessment = fraud_scorer.score(request)
        took = (time.perf_counter() - started) * 1000
        return ScoreOut.of(assessment, fraud_scorer.thresholds, took)


ROUTES = [FraudController]
