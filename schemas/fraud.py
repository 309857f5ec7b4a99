"""Fraud domain (aggregate ``fraud_alert``): alerts from heuristics and ML scoring."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import Id
from schemas.spec import EventSpec

__all__ = ["SPECS", "FraudAlertRaised"]


class FraudAlertRaised(msgspec.Struct, frozen=True, kw_only=True):
    """fraud.alert_raised: a subject (order, payment, customer, seller) looked fraudulent."""

    alert_id: Id
    subject_type: Literal["order", "payment", "customer", "seller"]
    subject_id: Id
    order_id: Id | None = None
    payment_id: Id | None = None
    customer_id: Id | None = None
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    severity: Literal["low", "medium", "high", "critical"]
    # Rule ids that fired, e.g. "location_mismatch", "bulk_order", "velocity".
    rules: list[str] = []
    model_version: str | None = None
    action: Literal["none", "review", "hold", "block"] = "review"


SPECS = (EventSpec("fraud.alert_raised", 1, "fraud", "fraud_alert", FraudAlertRaised, "alert_id"),)
