"""The checkout's fraud screen (``transactional.checkout.ports.FraudScreen``) on the scorer."""

from __future__ import annotations

from collections.abc import Callable

from serving.fraud.model import Item, ScoreRequest
from serving.fraud.service import FraudScorer
from transactional.checkout.model import Checkout, FraudVerdict
from transactional.checkout.ports import FraudScreen


def score_request(checkout: Checkout, account_region: str | None) -> ScoreRequest:
    """What the scorer is asked about a validated checkout (the subtotal, as the streaming
    job counts it; the card's stable id, not its per-customer vault token)."""
    plan = checkout.plan
    assert plan is not None, "screen a validated checkout"
    context = checkout.context
    return ScoreRequest(
        customer_id=checkout.customer_id,
        amount_minor=plan.subtotal_minor,
        currency=plan.currency,
        items=tuple(Item(line.sku, line.quantity, line.unit_price_minor) for line in plan.lines),
        instrument_id=checkout.instrument_id,
        device_id=context.device_id,
        client_ip=context.client_ip,
        ip_region=context.ip_region,
        ship_region=plan.ship_region,
        account_region=account_region or None,
    )


class CheckoutScreen:
    """Asks the scorer about each checkout; its decision becomes the saga's verdict."""

    def __init__(self, scorer: FraudScorer) -> None:
        self._scorer = scorer

    def screen(self, checkout: Checkout, account_region: str) -> FraudVerdict:
        """The verdict on a validated checkout."""
        assessment = self._scorer.score(score_request(checkout, account_region))
        return FraudVerdict(
            decision=assessment.decision,
            score=assessment.score,
            rules=assessment.rules,
            reasons=tuple(assessment.reasons),
            model_version=assessment.model_version,
        )


class LazyFraudScreen:
    """A screen found when first used (the composition root builds the scorer after the
    checkout; ``souk.services``' fraud block provides it as ``fraud_screen``)."""

    def __init__(self, find: Callable[[], FraudScreen | None]) -> None:
        self._find = find

    def screen(self, checkout: Checkout, account_region: str) -> FraudVerdict:
        """The provided screen's verdict; approve (saying why) if none is provided."""
        target = self._find()
        if target is None:
            return FraudVerdict("approve", 0.0, reasons=("no_screen",))
        return target.screen(checkout, account_region)
