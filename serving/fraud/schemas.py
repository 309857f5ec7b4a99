"""Request and response bodies of ``POST /v1/fraud/score`` (msgspec, decoded strictly)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from serving.fraud.model import Assessment, Item, ScoreRequest, Thresholds
from transactional.shared.errors import InvalidRequest
from transactional.shared.regions import parse_ip, region_of_country

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Region = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,15}$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One line of the order: SKU, units, unit price in minor units."""

    sku: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    unit_price_minor: Annotated[int, msgspec.Meta(ge=0)]


class ScoreIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What to score. ``payment_instrument`` is the card's stable id (``card_…`` as in
    ``checkout.started``); ``ip_region`` is derived from ``client_ip`` (SOUK_IP_REGIONS) when
    not given; ``shipping_region`` from ``shipping_country`` likewise. The account's region
    and creation time are looked up when not given."""

    customer_id: Id
    amount_minor: Annotated[int, msgspec.Meta(ge=0)]
    currency: Currency
    items: Annotated[list[ItemIn], msgspec.Meta(max_length=500)] = []
    payment_instrument: Id | None = None
    device_id: Id | None = None
    client_ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    ip_region: Region | None = None
    shipping_region: Region | None = None
    shipping_country: Country | None = None
    account_region: Region | None = None
    account_created_at: datetime | None = None

    def to_domain(self, ip_region_of: Any) -> ScoreRequest:
        """The domain request; 422 for an unparseable IP or an unknown country."""
        client_ip = None
        if self.client_ip is not None:
            parsed = parse_ip(self.client_ip)
            if parsed is None:
                raise InvalidRequest(
                    f"client_ip {self.client_ip!r} is not an IP address", code="invalid_client_ip"
                )
            client_ip = str(parsed)
        ship_region = self.shipping_region
        if ship_region is None and self.shipping_country is not None:
            ship_region = region_of_country(self.shipping_country)
            if ship_region is None:
                raise InvalidRequest(
                    f"no region serves {self.shipping_country}", code="invalid_shipping_country"
                )
        created = self.account_created_at
        if created is not None and created.utcoffset() is None:
            raise InvalidRequest(
                "account_created_at needs a time zone (e.g. Z)", code="invalid_timestamp"
            )
        return ScoreRequest(
            customer_id=self.customer_id,
            amount_minor=self.amount_minor,
            currency=self.currency,
            items=tuple(Item(i.sku, i.quantity, i.unit_price_minor) for i in self.items),
            instrument_id=self.payment_instrument,
            device_id=self.device_id,
            client_ip=client_ip,
            ip_region=self.ip_region or (ip_region_of(client_ip) if client_ip else None),
            ship_region=ship_region,
            account_region=self.account_region,
            account_created_at=created,
        )


class ContributionOut(msgspec.Struct, kw_only=True):
    """A model feature, its value and how much it moved the score."""

    feature: str
    value: float | None
    contribution: float


class ReasonsOut(msgspec.Struct, kw_only=True):
    """Why: the rules that fired and the model's top features."""

    rules: list[str]
    model_features: list[ContributionOut]
    signals_available: bool


class ThresholdsOut(msgspec.Struct, kw_only=True):
    """The thresholds the decision used (SOUK_FRAUD_REVIEW_THRESHOLD / _DECLINE_)."""

    review: float
    decline: float


class ScoreOut(msgspec.Struct, kw_only=True):
    """The score (0..1), the decision and its reasons."""

    score: float
    decision: str
    reasons: ReasonsOut
    rules_score: float
    model_score: float | None
    model_version: str | None
    features: dict[str, float | int | None]
    thresholds: ThresholdsOut
    took_ms: float

    @classmethod
    def of(cls, assessment: Assessment, thresholds: Thresholds, took_ms: float) -> ScoreOut:
        """The response body of an assessment."""
        return cls(
            score=assessment.score,
            decision=assessment.decision,
            reasons=ReasonsOut(
                rules=list(assessment.rules),
                model_features=[
                    ContributionOut(feature=c.feature, value=c.value, contribution=c.contribution)
                    for c in assessment.top_features
                ],
                signals_available=assessment.signals_available,
            ),
            rules_score=assessment.rules_score,
            model_score=assessment.model_score,
            model_version=assessment.model_version,
            features=dict(assessment.features),
            thresholds=ThresholdsOut(review=thresholds.review, decline=thresholds.decline),
            took_ms=round(took_ms, 3),
        )
