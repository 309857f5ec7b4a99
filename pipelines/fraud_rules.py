"""The fraud job's signals and rules as pure Python: no PyFlink, no I/O, unit-tested.

``pipelines.fraud`` keeps one :class:`History` per entity (customer, payment instrument,
device, client IP) in Flink keyed state and calls these functions on it:

* features *as of* an order: every function takes the order it is evaluated at and only looks
  at orders that sort at or before it (by ``(at_ms, checkout_id)``), so the result is a pure
  function of the set of orders seen, whatever order they arrived in. That is what makes a job
  restored from a checkpoint (which replays events, possibly interleaved differently) push
  the same values and raise the same alerts as an uninterrupted one;
* the customer's amount history is kept as exact integer moments (count, sum, sum of
  squares of minor units) instead of a floating Welford accumulator: integers add up to the
  same value in any order, Welford's float updates do not (see :class:`Moments`);
* rules read the features and return the ids of the rules that fired.

Times are epoch milliseconds of the envelopes' ``occurred_at`` (event time). Thresholds are
the named constants below.
"""

from __future__ import annotations

import hashlib
import math
import operator
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any

from schemas.envelope import Envelope
from schemas.ids import CROCKFORD_ALPHABET
from schemas.registry import REGISTRY
from transactional.shared.regions import region_of_country

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# --- thresholds -------------------------------------------------------------------------------

#: Orders of one customer in the last minute / hour that make a burst (either fires).
VELOCITY_1M_MIN = 3
VELOCITY_1H_MIN = 5
#: An order this many standard deviations above the customer's mean amount is an outlier...
ZSCORE_MIN = 3.0
#: ...once the customer has at least this many earlier orders.
ZSCORE_MIN_PRIOR_ORDERS = 5
#: The standard deviation a z-score divides by is at least this (minor units)...
AMOUNT_STD_FLOOR_MINOR = 100
#: ...and at least this share of the mean (a customer whose orders all cost the same is not
#: flagged for spending a little more).
AMOUNT_STD_FLOOR_SHARE = 0.25
#: A line with this many units of one SKU is a bulk order.
BULK_QUANTITY_MIN = 10
#: An account younger than this placing an order of at least HIGH_VALUE_MIN_MINOR (EUR 500.00)
#: or its equivalent in the order's currency (HIGH_VALUE_MIN; unknown currencies: the EUR
#: figure). Per currency, because INR 500.00 is a cheap order.
NEW_ACCOUNT_MAX_AGE_MS = DAY_MS
HIGH_VALUE_MIN_MINOR = 50_000
HIGH_VALUE_MIN: dict[str, int] = {"EUR": 50_000, "USD": 55_000, "GBP": 45_000, "INR": 4_500_000}
#: Distinct payment instruments used from one device in 24 h (card testing).
DEVICE_INSTRUMENTS_MIN = 3
#: Distinct customers paying with one instrument in 24 h (a shared or stolen card).
INSTRUMENT_CUSTOMERS_MIN = 3
#: How far back (event time) an entity's orders are kept for the windowed features.
HISTORY_MS = DAY_MS
#: ``account_age_s`` when the account's registration was never seen.
UNKNOWN_AGE = -1

# --- rule ids (as they appear in fraud.alert_raised.rules, in this order) ---------------------

VELOCITY = "velocity"
AMOUNT_OUTLIER = "amount_outlier"
BULK_QUANTITY = "bulk_quantity"
NEW_ACCOUNT_HIGH_VALUE = "new_account_high_value"
SHIP_REGION_MISMATCH = "ship_region_mismatch"
IP_REGION_MISMATCH = "ip_region_mismatch"
DEVICE_MANY_INSTRUMENTS = "device_many_instruments"
INSTRUMENT_MANY_CUSTOMERS = "instrument_many_customers"
RULES: tuple[str, ...] = (
    VELOCITY,
    AMOUNT_OUTLIER,
    BULK_QUANTITY,
    NEW_ACCOUNT_HIGH_VALUE,
    SHIP_REGION_MISMATCH,
    IP_REGION_MISMATCH,
    DEVICE_MANY_INSTRUMENTS,
    INSTRUMENT_MANY_CUSTOMERS,
)

# --- entities and their feature views ---------------------------------------------------------

CUSTOMER = "customer"
INSTRUMENT = "instrument"
DEVICE = "device"
IP = "ip"
#: Entity kind → (Feast feature view, its join key).
VIEWS: dict[str, tuple[str, str]] = {
    CUSTOMER: ("customer_fraud_signals", "customer_id"),
    INSTRUMENT: ("instrument_fraud_signals", "instrument_id"),
    DEVICE: ("device_fraud_signals", "device_id"),
    IP: ("ip_fraud_signals", "client_ip"),
}
#: The entities whose rules an alert waits for (the IP's features feed no rule).
RULE_ENTITIES: tuple[str, ...] = (CUSTOMER, INSTRUMENT, DEVICE)

#: Namespace of the alerts' deterministic ids.
ALERT_NAMESPACE = uuid.UUID("6f1d3c2e-5b7a-4e0f-9a41-7c2d8e5f0b13")
ALERT_ID_PREFIX = "frd"


@dataclass(frozen=True, slots=True)
class Order:
    """What the job keeps of one checkout.started."""

    checkout_id: str
    customer_id: str
    at_ms: int
    amount_minor: int
    region: str  # the envelope's region (where the alert goes)
    event_id: str = ""
    currency: str | None = None
    ship_region: str | None = None
    ip_region: str | None = None
    device_id: str | None = None
    client_ip: str | None = None
    instrument_id: str | None = None
    max_quantity: int = 0

    @property
    def key(self) -> tuple[int, str]:
        """The order's place in event time (ties broken by checkout id)."""
        return (self.at_ms, self.checkout_id)

    def entities(self) -> list[tuple[str, str]]:
        """(kind, id) of every entity the order counts for."""
        found = [(CUSTOMER, self.customer_id)]
        for kind, value in (
            (INSTRUMENT, self.instrument_id),
            (DEVICE, self.device_id),
            (IP, self.client_ip),
        ):
            if value:
                found.append((kind, value))
        return found

    def rule_parts(self) -> int:
        """How many entities report rules for this order (what its alert waits for)."""
        return sum(1 for kind, _ in self.entities() if kind in RULE_ENTITIES)


@dataclass(frozen=True, slots=True)
class Account:
    """A customer's registration: home region and creation time (``occurred_at``)."""

    region: str | None
    created_ms: int


def order_of(payload: Mapping[str, Any], at_ms: int, region: str, event_id: str = "") -> Order:
    """The :class:`Order` of a checkout.started payload (KeyError/TypeError if malformed)."""
    lines = payload.get("lines") or []
    address = payload.get("shipping_address") or {}
    country = address.get("country")
    return Order(
        checkout_id=str(payload["checkout_id"]),
        customer_id=str(payload["customer_id"]),
        at_ms=int(at_ms),
        amount_minor=int(payload["subtotal"]["amount_minor"]),
        region=region,
        event_id=event_id,
        currency=payload["subtotal"].get("currency"),
        ship_region=region_of_country(country) if isinstance(country, str) else None,
        ip_region=payload.get("ip_region") or None,
        device_id=payload.get("device_id") or None,
        client_ip=payload.get("client_ip") or None,
        instrument_id=payload.get("instrument_id") or None,
        max_quantity=max((int(line.get("quantity") or 0) for line in lines), default=0),
    )


def account_of(payload: Mapping[str, Any], at_ms: int) -> Account:
    """The :class:`Account` of a user.registered payload created at ``at_ms``."""
    return Account(region=payload.get("region") or None, created_ms=int(at_ms))


# --- pure computations ------------------------------------------------------------------------


def velocity(times_ms: Iterable[int], at_ms: int, window_ms: int) -> int:
    """How many of ``times_ms`` fall in the window ``(at_ms - window_ms, at_ms]``."""
    return sum(1 for t in times_ms if at_ms - window_ms < t <= at_ms)


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of integer amounts: exact, so order-independent.

    A Welford accumulator gives the same mean and deviation for floats, but its result
    depends (in the last bits) on the order of the updates; minor units are integers, so
    exact sums need no such trade-off and a replay in any order lands on the same values.
    """

    count: int = 0
    total: int = 0
    squares: int = 0

    def add(self, amount: int) -> Moments:
        """These moments with ``amount`` added."""
        return Moments(self.count + 1, self.total + amount, self.squares + amount * amount)

    def remove(self, amount: int) -> Moments:
        """These moments without ``amount`` (which must have been added)."""
        return Moments(self.count - 1, self.total - amount, self.squares - amount * amount)

    @property
    def mean(self) -> float:
        """The mean amount (0.0 with no amounts)."""
        return self.total / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        """The sample standard deviation (0.0 with fewer than two amounts)."""
        if self.count < 2:
            return 0.0
        numerator = self.count * self.squares - self.total * self.total  # exact, >= 0
        return math.sqrt(max(numerator, 0) / (self.count * (self.count - 1)))

    def zscore(self, amount: int) -> float:
        """How many (floored) standard deviations ``amount`` lies from the mean (0.0 if empty).

        The deviation divided by is at least AMOUNT_STD_FLOOR_MINOR and
        AMOUNT_STD_FLOOR_SHARE of the mean, so identical past amounts give a finite score.
        """
        if self.count == 0:
            return 0.0
        spread = max(self.std, AMOUNT_STD_FLOOR_MINOR, AMOUNT_STD_FLOOR_SHARE * self.mean)
        return (amount - self.mean) / spread


def welford(amounts: Iterable[int]) -> tuple[int, float, float]:
    """(count, mean, sample std) by Welford's online algorithm (the float reference that
    :class:`Moments` agrees with)."""
    count, mean, m2 = 0, 0.0, 0.0
    for amount in amounts:
        count += 1
        delta = amount - mean
        mean += delta / count
        m2 += delta * (amount - mean)
    return count, mean, math.sqrt(m2 / (count - 1)) if count > 1 else 0.0


def is_bulk(max_quantity: int) -> bool:
    """Whether a line of ``max_quantity`` units of one SKU is a bulk order."""
    return max_quantity >= BULK_QUANTITY_MIN


def is_new_account_high_value(
    age_ms: int | None, amount_minor: int, currency: str | None = "EUR"
) -> bool:
    """Whether an account ``age_ms`` old (None: unknown) placing ``amount_minor`` is suspect."""
    threshold = HIGH_VALUE_MIN.get(currency or "", HIGH_VALUE_MIN_MINOR)
    return age_ms is not None and age_ms < NEW_ACCOUNT_MAX_AGE_MS and amount_minor >= threshold


def region_mismatch(region: str | None, account_region: str | None) -> bool:
    """Whether both regions are known and differ."""
    return bool(region) and bool(account_region) and region != account_region


def distinct(values: Iterable[str | None]) -> int:
    """How many distinct non-empty values."""
    return len({value for value in values if value})


# --- per-entity state -------------------------------------------------------------------------


@dataclass(slots=True)
class History:
    """One entity's keyed state: recent orders, all-time amount moments, the account.

    ``orders`` holds the orders of the last HISTORY_MS before the newest one (by checkout id;
    a checkout seen twice counts once). ``moments`` covers every order ever seen.
    ``evaluated`` names the recent orders whose rules were reported, ``due_ms`` the processing
    time by which each pending one is evaluated even if the watermark has not reached it.
    """

    orders: dict[str, Order] = field(default_factory=dict)
    moments: Moments = field(default_factory=Moments)
    account: Account | None = None
    evaluated: set[str] = field(default_factory=set)
    due_ms: dict[str, int] = field(default_factory=dict)

    def add(self, order: Order) -> bool:
        """Record ``order``; False if it was already recorded (a redelivered event)."""
        if order.checkout_id in self.orders:
            return False
        self.orders[order.checkout_id] = order
        self.moments = self.moments.add(order.amount_minor)
        self.prune()
        return True

    def register(self, account: Account) -> bool:
        """Record the account's registration; False if nothing changed.

        The earliest registration seen is the account's creation, whatever the arrival order.
        """
        if self.account is not None and self.account.created_ms <= account.created_ms:
            return False
        self.account = account
        return True

    def latest(self) -> Order | None:
        """The newest order (event time), or None."""
        return max(self.orders.values(), key=lambda o: o.key, default=None)

    def prune(self) -> None:
        """Drop orders more than HISTORY_MS older than the newest one."""
        newest = self.latest()
        if newest is None:
            return
        horizon = newest.at_ms - HISTORY_MS
        for checkout_id in [c for c, o in self.orders.items() if o.at_ms <= horizon]:
            del self.orders[checkout_id]
            self.evaluated.discard(checkout_id)
            self.due_ms.pop(checkout_id, None)

    def upto(self, at: Order) -> list[Order]:
        """The recent orders at or before ``at`` (event-time order, ties by checkout id)."""
        return sorted((o for o in self.orders.values() if o.key <= at.key), key=lambda o: o.key)

    def pending(self, at_ms: int | None = None) -> list[Order]:
        """Orders whose rules are not reported yet (only those at ``at_ms`` if given)."""
        found = [
            o
            for o in self.orders.values()
            if o.checkout_id not in self.evaluated and (at_ms is None or o.at_ms == at_ms)
        ]
        return sorted(found, key=lambda o: o.key)

    def overdue(self, now_ms: int) -> list[Order]:
        """Pending orders whose processing-time deadline is at or before ``now_ms``."""
        return [o for o in self.pending() if self.due_ms.get(o.checkout_id, 0) <= now_ms]

    def mark_evaluated(self, order: Order) -> None:
        """Record that ``order``'s rules were reported."""
        self.evaluated.add(order.checkout_id)
        self.due_ms.pop(order.checkout_id, None)

    def next_due(self) -> int | None:
        """The earliest processing-time deadline of a pending order, or None."""
        return min(self.due_ms.values(), default=None)

    def to_state(self) -> HistoryState:
        """This history as plain tuples: what the job keeps in Flink state.

        Plain tuples pickle about four times faster than the dataclasses (the job pickles an
        entity's state on every event and timer).
        """
        account = self.account
        return (
            tuple(order_fields(order) for order in self.orders.values()),
            (self.moments.count, self.moments.total, self.moments.squares),
            None if account is None else (account.region, account.created_ms),
            tuple(self.evaluated),
            tuple(self.due_ms.items()),
        )

    @classmethod
    def from_state(cls, state: HistoryState) -> History:
        """The history ``to_state`` gave."""
        orders, moments, account, evaluated, due_ms = state
        return cls(
            orders={fields[0]: Order(*fields) for fields in orders},
            moments=Moments(*moments),
            account=None if account is None else Account(*account),
            evaluated=set(evaluated),
            due_ms=dict(due_ms),
        )


#: An :class:`Order`'s fields as a tuple in declaration order (``Order(*fields)`` rebuilds it).
order_fields = operator.attrgetter(*(f.name for f in dataclass_fields(Order)))
#: ``History.to_state()``: orders' fields, moments, account, evaluated ids, deadlines.
HistoryState = tuple[
    tuple[tuple[Any, ...], ...],
    tuple[int, int, int],
    "tuple[str | None, int] | None",
    tuple[str, ...],
    tuple[tuple[str, int], ...],
]


def _stamp(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC)


def customer_features(history: History, at: Order) -> dict[str, Any]:
    """The customer_fraud_signals row of ``history`` as of the order ``at``.

    Velocity counts the customer's orders in the last minute/hour/24 h up to ``at``; the
    amount mean and deviation are those of the customer's orders *before* ``at`` (all time),
    and ``amount_zscore`` is ``at``'s amount against them; region flags, quantity and the
    new-account flag describe ``at`` itself; ``account_age_s`` is -1 when the account's
    registration was never seen.
    """
    upto = history.upto(at)
    times = [o.at_ms for o in upto]
    prior = history.moments
    for later in history.orders.values():
        if later.key >= at.key:
            prior = prior.remove(later.amount_minor)
    account = history.account
    age_ms = None if account is None else max(at.at_ms - account.created_ms, 0)
    account_region = None if account is None else account.region
    return {
        "customer_id": at.customer_id,
        "orders_1m": velocity(times, at.at_ms, MINUTE_MS),
        "orders_1h": velocity(times, at.at_ms, HOUR_MS),
        "orders_24h": velocity(times, at.at_ms, DAY_MS),
        "amount_mean_minor": prior.mean,
        "amount_std_minor": prior.std,
        "amount_zscore": prior.zscore(at.amount_minor),
        "ship_region_mismatch": int(region_mismatch(at.ship_region, account_region)),
        "ip_region_mismatch": int(region_mismatch(at.ip_region, account_region)),
        "max_line_quantity": at.max_quantity,
        "new_account_high_value": int(
            is_new_account_high_value(age_ms, at.amount_minor, at.currency)
        ),
        "account_age_s": UNKNOWN_AGE if age_ms is None else age_ms // SECOND_MS,
        "event_timestamp": _stamp(at.at_ms),
        # not a feature: what the rules need besides the features
        "_prior_orders": prior.count,
    }


def customer_rules(features: Mapping[str, Any]) -> list[str]:
    """The customer rules a customer_features row fires."""
    fired = []
    if features["orders_1m"] >= VELOCITY_1M_MIN or features["orders_1h"] >= VELOCITY_1H_MIN:
        fired.append(VELOCITY)
    if (
        features["_prior_orders"] >= ZSCORE_MIN_PRIOR_ORDERS
        and features["amount_zscore"] >= ZSCORE_MIN
    ):
        fired.append(AMOUNT_OUTLIER)
    if is_bulk(features["max_line_quantity"]):
        fired.append(BULK_QUANTITY)
    if features["new_account_high_value"]:
        fired.append(NEW_ACCOUNT_HIGH_VALUE)
    if features["ship_region_mismatch"]:
        fired.append(SHIP_REGION_MISMATCH)
    if features["ip_region_mismatch"]:
        fired.append(IP_REGION_MISMATCH)
    return fired


def _shared_features(key: str, entity_id: str, upto: list[Order], at: Order) -> dict[str, Any]:
    day = [o for o in upto if at.at_ms - DAY_MS < o.at_ms]
    return {
        key: entity_id,
        "orders_1h": velocity((o.at_ms for o in upto), at.at_ms, HOUR_MS),
        "orders_24h": len(day),
        "distinct_customers_24h": distinct(o.customer_id for o in day),
    }


def instrument_features(history: History, instrument_id: str, at: Order) -> dict[str, Any]:
    """The instrument_fraud_signals row as of ``at``: velocity, customers sharing it in 24 h."""
    row = _shared_features("instrument_id", instrument_id, history.upto(at), at)
    return {**row, "event_timestamp": _stamp(at.at_ms)}


def device_features(history: History, device_id: str, at: Order) -> dict[str, Any]:
    """The device_fraud_signals row as of ``at``: velocity, instruments and customers in 24 h."""
    upto = history.upto(at)
    row = _shared_features("device_id", device_id, upto, at)
    day = [o for o in upto if at.at_ms - DAY_MS < o.at_ms]
    return {
        "device_id": device_id,
        "orders_1h": row["orders_1h"],
        "orders_24h": row["orders_24h"],
        "distinct_instruments_24h": distinct(o.instrument_id for o in day),
        "distinct_customers_24h": row["distinct_customers_24h"],
        "event_timestamp": _stamp(at.at_ms),
    }


def ip_features(history: History, client_ip: str, at: Order) -> dict[str, Any]:
    """The ip_fraud_signals row as of ``at``: velocity, customers behind the IP in 24 h."""
    row = _shared_features("client_ip", client_ip, history.upto(at), at)
    return {**row, "event_timestamp": _stamp(at.at_ms)}


def features(kind: str, entity_id: str, history: History, at: Order) -> dict[str, Any]:
    """The feature row of entity (``kind``, ``entity_id``) as of ``at``."""
    if kind == CUSTOMER:
        return customer_features(history, at)
    if kind == INSTRUMENT:
        return instrument_features(history, entity_id, at)
    if kind == DEVICE:
        return device_features(history, entity_id, at)
    if kind == IP:
        return ip_features(history, entity_id, at)
    raise ValueError(f"unknown entity kind {kind!r}")


def feature_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as pushed to Feast (without the rules' private fields)."""
    return {name: value for name, value in row.items() if not name.startswith("_")}


def rules(kind: str, row: Mapping[str, Any]) -> list[str]:
    """The rules a feature row of ``kind`` fires."""
    if kind == CUSTOMER:
        return customer_rules(row)
    if kind == DEVICE and row["distinct_instruments_24h"] >= DEVICE_INSTRUMENTS_MIN:
        return [DEVICE_MANY_INSTRUMENTS]
    if kind == INSTRUMENT and row["distinct_customers_24h"] >= INSTRUMENT_CUSTOMERS_MIN:
        return [INSTRUMENT_MANY_CUSTOMERS]
    return []


# --- alerts -----------------------------------------------------------------------------------


def ordered_rules(fired: Iterable[str]) -> list[str]:
    """``fired`` without duplicates, in RULES order."""
    found = set(fired)
    return [rule for rule in RULES if rule in found]


def verdict(fired: list[str]) -> tuple[float, str, str]:
    """(score, severity, action) of an alert with ``fired`` rules (at least one).

    Every rule halves the chance the order is honest: 1 rule 0.5 medium review, 2 rules
    0.75 high hold, 3 or more 0.875+ critical hold.
    """
    n = len(fired)
    if n < 1:
        raise ValueError("an alert needs at least one rule")
    score = round(1 - 0.5**n, 4)
    severity = "medium" if n == 1 else "high" if n == 2 else "critical"
    return score, severity, "review" if n == 1 else "hold"


def stable_uuid(at_ms: int, name: str) -> uuid.UUID:
    """A UUIDv7 whose time is ``at_ms`` and whose other bits hash ``name``: deterministic
    (a replay makes the same id) yet time-ordered like every other event id."""
    digest = int.from_bytes(hashlib.sha256(f"{ALERT_NAMESPACE}:{name}".encode()).digest()[:10])
    rand_a = digest >> 68  # 12 bits
    rand_b = digest & ((1 << 62) - 1)
    value = (at_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def _crockford(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def alert_id(order: Order) -> str:
    """The alert id of ``order``'s checkout (``frd_…``, parseable by ``schemas.ids.parse_id``)."""
    number = stable_uuid(order.at_ms, "alert:" + order.checkout_id).int
    return f"{ALERT_ID_PREFIX}_{_crockford(number)}"


def alert_event(order: Order, fired: Iterable[str]) -> Envelope | None:
    """The fraud.alert_raised envelope of ``order`` if any rule fired (schema-validated).

    Every field derives from the order and the rules: the event id and alert id hash the
    checkout id, ``occurred_at`` is the checkout's, so a replay publishes the same event and
    consumers dedupe it by event id. The subject is the order being placed, named by its
    checkout id (no order id exists yet when checkout starts; checkout.completed links the
    two); the checkout.started event is the cause.
    """
    ordered = ordered_rules(fired)
    if not ordered:
        return None
    score, severity, action = verdict(ordered)
    causation = None
    if order.event_id:
        try:
            causation = uuid.UUID(order.event_id)
        except ValueError:
            causation = None
    return REGISTRY.new_event(
        "fraud.alert_raised",
        {
            "alert_id": alert_id(order),
            "subject_type": "order",
            "subject_id": order.checkout_id,
            "customer_id": order.customer_id,
            "score": score,
            "severity": severity,
            "rules": ordered,
            "action": action,
        },
        region=order.region,
        occurred_at=_stamp(order.at_ms),
        event_id=stable_uuid(order.at_ms, "event:" + order.checkout_id),
        causation_id=causation,
    )
