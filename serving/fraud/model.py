"""Fraud scoring as pure Python: request-time features, rules, the model's share, a decision.

The scorer combines three things (no I/O here; the ports bring the inputs):

* **stored signals**: the streaming fraud views (Feast online store, written by the
  ``fraud`` Flink job) describe each entity *as of its newest order*, i.e. the orders before
  this one. They are turned into **request-time features** of *this* order: the velocity
  counts plus this order (counts older than their window are dropped), the amount's z-score
  against the customer's earlier orders, the account's age now, and the order's own facts
  (regions against the account's, the largest quantity of one SKU);
* **rules**: the streaming job's rules (``pipelines.fraud_rules``, same ids and thresholds)
  evaluated on those features; each rule has a weight and the rules' score is their
  noisy-OR ``1 - prod(1 - w)`` (independent pieces of evidence);
* **the promoted model** (when one is promoted): its fraud probability, and the features that
  moved it most (each feature's contribution = the score minus the score with that feature
  missing, which the gradient-boosting model handles natively).

The score is the larger of the rules' score and the model's probability (the model was
trained on the same signals, so adding them would count them twice). With no model promoted
the rules alone decide. ``review`` at or above ``Thresholds.review``, ``decline`` at or above
``Thresholds.decline``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pipelines import fraud_rules as fr

Decision = Literal["approve", "review", "decline"]
DECISIONS: tuple[Decision, ...] = ("approve", "review", "decline")

#: Weight of each rule in the rules' noisy-OR: how much one hit alone says. Sharing rules
#: (one card on many accounts, many cards on one device) say most; the others say "unusual"
#: and only add up. One weak rule never reaches the default review threshold.
RULE_WEIGHTS: dict[str, float] = {
    fr.VELOCITY: 0.45,
    fr.AMOUNT_OUTLIER: 0.40,
    fr.BULK_QUANTITY: 0.35,
    fr.NEW_ACCOUNT_HIGH_VALUE: 0.50,
    fr.SHIP_REGION_MISMATCH: 0.45,
    fr.IP_REGION_MISMATCH: 0.45,
    fr.DEVICE_MANY_INSTRUMENTS: 0.70,
    fr.INSTRUMENT_MANY_CUSTOMERS: 0.70,
}
#: How many model features a reason list names.
TOP_FEATURES = 3
#: Order features of the fraud model (``models.fraud.training.ORDER_FEATURES``).
ORDER_FEATURES = ("total_minor", "units", "line_count")

_CUSTOMER = "customer_fraud_signals"
_INSTRUMENT = "instrument_fraud_signals"
_DEVICE = "device_fraud_signals"
_IP = "ip_fraud_signals"
#: The streaming features the rules read, as ``view__feature`` (Feast's full names).
RULE_REFS: tuple[str, ...] = (
    f"{_CUSTOMER}:orders_1m",
    f"{_CUSTOMER}:orders_1h",
    f"{_CUSTOMER}:orders_24h",
    f"{_CUSTOMER}:amount_mean_minor",
    f"{_CUSTOMER}:amount_std_minor",
    f"{_CUSTOMER}:account_age_s",
    f"{_INSTRUMENT}:distinct_customers_24h",
    f"{_DEVICE}:distinct_instruments_24h",
    f"{_IP}:distinct_customers_24h",
)


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds of the decisions (from the settings)."""

    review: float
    decline: float

    def __post_init__(self) -> None:
        if not 0 < self.review <= self.decline <= 1:
            raise ValueError("fraud thresholds need 0 < review <= decline <= 1")

    def decide(self, score: float) -> Decision:
        """The decision a score gets."""
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"


@dataclass(frozen=True)
class Item:
    """One line of the order being scored."""

    sku: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class ScoreRequest:
    """What is scored: who pays with what, from where, how much, shipped where, for what."""

    customer_id: str
    amount_minor: int
    currency: str
    items: tuple[Item, ...] = ()
    instrument_id: str | None = None  # the card's stable id (not a per-customer vault token)
    device_id: str | None = None
    client_ip: str | None = None
    ip_region: str | None = None  # the region the client IP maps to
    ship_region: str | None = None
    account_region: str | None = None  # None: looked up by the scorer
    account_created_at: datetime | None = None  # None: looked up by the scorer


@dataclass(frozen=True)
class Account:
    """What the scorer knows of the paying account."""

    region: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class Signals:
    """Stored feature values by ``view__feature`` (None: nothing stored) and, per view, the
    event time of the stored row (None: no row)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    stamps: Mapping[str, datetime | None] = field(default_factory=dict)
    available: bool = True  # False: the online store could not be read

    def value(self, ref: str) -> float | None:
        """A numeric value, None when missing."""
        raw = self.values.get(ref.replace(":", "__"))
        if raw is None or isinstance(raw, bool):
            return None
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(number) else number

    def age_s(self, view: str, now: datetime) -> float | None:
        """Seconds since the view's stored row was written (None: no row)."""
        stamp = self.stamps.get(view)
        return None if stamp is None else max((now - stamp).total_seconds(), 0.0)


class FraudModel(Protocol):
    """A promoted fraud classifier."""

    @property
    def version(self) -> str:
        """The registry version served."""

    @property
    def features(self) -> Sequence[str]:
        """Input columns, in order (order features and ``view__feature`` names)."""

    @property
    def feature_refs(self) -> Sequence[str]:
        """The Feast references (``view:feature``) among the inputs."""

    def predict(self, rows: Sequence[Mapping[str, float | None]]) -> list[float]:
        """Fraud probabilities of rows (None: missing, which the model handles)."""


@dataclass(frozen=True)
class Contribution:
    """How much one model feature moved the score (score minus score without it)."""

    feature: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class Assessment:
    """The scorer's answer."""

    score: float
    decision: Decision
    rules: tuple[str, ...]  # rules fired, in RULES order
    rules_score: float
    model_score: float | None  # None: no model promoted
    model_version: str | None
    top_features: tuple[Contribution, ...]
    features: Mapping[str, float | int | None]  # the request-time features the rules read
    signals_available: bool = True

    @property
    def reasons(self) -> list[str]:
        """One line per reason: the rules fired, then the model's top features."""
        lines = [f"rule:{rule}" for rule in self.rules]
        lines += [
            f"model:{c.feature}{'+' if c.contribution >= 0 else ''}{c.contribution:.3f}"
            for c in self.top_features
        ]
        if not self.signals_available:
            lines.append("signals_unavailable")
        return lines


# --- request-time features ----------------------------------------------------------------


def _fresh_count(signals: Signals, ref: str, window_s: float, now: datetime) -> int:
    """A stored count of the view's newest order, if that order is within ``window_s``."""
    view = ref.split(":", 1)[0]
    age = signals.age_s(view, now)
    value = signals.value(ref)
    if age is None or value is None or age >= window_s:
        return 0
    return int(value)


def request_features(
    request: ScoreRequest, account: Account, signals: Signals, now: datetime
) -> dict[str, float | int | None]:
    """The features of this order as of ``now`` (see the module docstring).

    Velocity counts are the stored ones plus this order (an upper bound: the stored count
    is as of the customer's previous order, some of which may have left the window since).
    Sharing counts (cards per device, accounts per card) are the stored 24-hour ones as they
    are: whether this card or account is among them cannot be told from a count.
    """
    minute, hour, day = 60.0, 3600.0, 86400.0
    orders_1m = _fresh_count(signals, f"{_CUSTOMER}:orders_1m", minute, now) + 1
    orders_1h = _fresh_count(signals, f"{_CUSTOMER}:orders_1h", hour, now) + 1
    orders_24h = _fresh_count(signals, f"{_CUSTOMER}:orders_24h", day, now) + 1
    mean = signals.value(f"{_CUSTOMER}:amount_mean_minor")
    std = signals.value(f"{_CUSTOMER}:amount_std_minor")
    prior = orders_24h - 1  # orders known before this one (a lower bound of all time)
    zscore: float | None = None
    if mean is not None and prior > 0:
        spread = max(std or 0.0, fr.AMOUNT_STD_FLOOR_MINOR, fr.AMOUNT_STD_FLOOR_SHARE * mean)
        zscore = (request.amount_minor - mean) / spread
    age_s: float | None = None
    if account.created_at is not None:
        age_s = max((now - account.created_at).total_seconds(), 0.0)
    else:
        stored_age = signals.value(f"{_CUSTOMER}:account_age_s")
        since = signals.age_s(_CUSTOMER, now)
        if stored_age is not None and stored_age >= 0 and since is not None:
            age_s = stored_age + since
    age_ms = None if age_s is None else int(age_s * 1000)
    max_quantity = max((item.quantity for item in request.items), default=0)
    return {
        "orders_1m": orders_1m,
        "orders_1h": orders_1h,
        "orders_24h": orders_24h,
        "prior_orders": prior,
        "amount_minor": request.amount_minor,
        "amount_zscore": None if zscore is None else round(zscore, 4),
        "account_age_s": None if age_s is None else int(age_s),
        "new_account_high_value": int(
            fr.is_new_account_high_value(age_ms, request.amount_minor, request.currency)
        ),
        "ship_region_mismatch": int(fr.region_mismatch(request.ship_region, account.region)),
        "ip_region_mismatch": int(fr.region_mismatch(request.ip_region, account.region)),
        "max_line_quantity": max_quantity,
        "device_instruments_24h": _fresh_count(
            signals, f"{_DEVICE}:distinct_instruments_24h", day, now
        ),
        "instrument_customers_24h": _fresh_count(
            signals, f"{_INSTRUMENT}:distinct_customers_24h", day, now
        ),
        "ip_customers_24h": _fresh_count(signals, f"{_IP}:distinct_customers_24h", day, now),
    }


def fired_rules(features: Mapping[str, float | int | None]) -> list[str]:
    """The rules the request-time features fire (``pipelines.fraud_rules`` thresholds)."""
    fired = []
    if (
        int(features["orders_1m"] or 0) >= fr.VELOCITY_1M_MIN
        or int(features["orders_1h"] or 0) >= fr.VELOCITY_1H_MIN
    ):
        fired.append(fr.VELOCITY)
    zscore = features["amount_zscore"]
    prior = int(features["prior_orders"] or 0)
    if zscore is not None and prior >= fr.ZSCORE_MIN_PRIOR_ORDERS and zscore >= fr.ZSCORE_MIN:
        fired.append(fr.AMOUNT_OUTLIER)
    if fr.is_bulk(int(features["max_line_quantity"] or 0)):
        fired.append(fr.BULK_QUANTITY)
    if features["new_account_high_value"]:
        fired.append(fr.NEW_ACCOUNT_HIGH_VALUE)
    if features["ship_region_mismatch"]:
        fired.append(fr.SHIP_REGION_MISMATCH)
    if features["ip_region_mismatch"]:
        fired.append(fr.IP_REGION_MISMATCH)
    if int(features["device_instruments_24h"] or 0) >= fr.DEVICE_INSTRUMENTS_MIN:
        fired.append(fr.DEVICE_MANY_INSTRUMENTS)
    if int(features["instrument_customers_24h"] or 0) >= fr.INSTRUMENT_CUSTOMERS_MIN:
        fired.append(fr.INSTRUMENT_MANY_CUSTOMERS)
    return fr.ordered_rules(fired)


def rules_score(rules: Sequence[str]) -> float:
    """The noisy-OR of the fired rules' weights (0 when none fired)."""
    honest = 1.0
    for rule in rules:
        honest *= 1.0 - RULE_WEIGHTS.get(rule, 0.5)
    return round(1.0 - honest, 4)


# --- the model ----------------------------------------------------------------------------


def model_row(
    request: ScoreRequest, model: FraudModel, signals: Signals
) -> dict[str, float | None]:
    """The model's input row: the order's own features and the stored ones it was trained on."""
    own: dict[str, float | None] = {
        "total_minor": float(request.amount_minor),
        "units": float(sum(item.quantity for item in request.items)),
        "line_count": float(len(request.items)),
    }
    return {name: own[name] if name in own else signals.value(name) for name in model.features}


def model_score(
    model: FraudModel, row: Mapping[str, float | None], top: int = TOP_FEATURES
) -> tuple[float, tuple[Contribution, ...]]:
    """The model's probability and its ``top`` features by absolute contribution.

    One prediction call: the row, then the row with each known feature set missing.
    """
    known = [name for name in model.features if row.get(name) is not None]
    rows = [dict(row)] + [{**row, name: None} for name in known]
    scores = model.predict(rows)
    base = float(scores[0])
    contributions = [
        Contribution(name, row[name], round(base - float(without), 4))
        for name, without in zip(known, scores[1:], strict=True)
    ]
    contributions.sort(key=lambda c: (-abs(c.contribution), c.feature))
    return round(base, 4), tuple(c for c in contributions[:top] if c.contribution != 0)


# --- the whole assessment -----------------------------------------------------------------


def assess(
    request: ScoreRequest,
    account: Account,
    signals: Signals,
    model: FraudModel | None,
    thresholds: Thresholds,
    now: datetime,
) -> Assessment:
    """Score ``request`` (see the module docstring)."""
    features = request_features(request, account, signals, now)
    rules = tuple(fired_rules(features))
    by_rules = rules_score(rules)
    probability: float | None = None
    top: tuple[Contribution, ...] = ()
    if model is not None:
        probability, top = model_score(model, model_row(request, model, signals))
    score = max(by_rules, probability or 0.0)
    return Assessment(
        score=round(score, 4),
        decision=thresholds.decide(score),
        rules=rules,
        rules_score=by_rules,
        model_score=probability,
        model_version=None if model is None else model.version,
        top_features=top,
        features=features,
        signals_available=signals.available,
    )


def check_request(request: ScoreRequest) -> None:
    """ValueError naming the first field that makes no sense."""
    if request.amount_minor < 0:
        raise ValueError("amount_minor must be >= 0")
    for item in request.items:
        if item.quantity < 1 or item.unit_price_minor < 0:
            raise ValueError(f"item {item.sku}: quantity >= 1 and unit_price_minor >= 0")


def summary(assessment: Assessment) -> dict[str, Any]:
    """The assessment as plain JSON (stored with the checkout saga)."""
    return {
        "score": assessment.score,
        "decision": assessment.decision,
        "rules": list(assessment.rules),
        "model_version": assessment.model_version,
        "reasons": assessment.reasons,
    }
