"""The fraud job on Flink's mini-cluster: each fraud pattern injected by hand, the exact
feature values read back through Feast, the exact alerts read off the fraud topics, and a
SIGKILLed job that resumes from its checkpoint and ends as if it had never stopped.

One test, two job runs (a run costs ~20 s): the first gets the first half of every pattern,
is killed after a checkpoint, the second gets the rest. Every pattern has its own customers,
devices, cards and IPs (fresh per run), and explicit event times (``BASE`` + offsets), so the
values are known exactly. Patterns that need earlier orders (velocity, amount outlier, the
shared device and card) only fire in the second run, from restored state.

Feature values are those of each entity as of its newest order; amounts are minor units.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer

from features.store import apply, feature_store, push_signals
from features.views import FRAUD_VIEWS
from pipelines import control
from pipelines import fraud_rules as fr
from pipelines.common.checkpoints import checkpoint_number, latest_checkpoint
from pipelines.common.runner import Servers
from pipelines.fraud import OnlineWriter, job_feature_store
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from tests.integration.streaming.conftest import wait_for

pytestmark = pytest.mark.integration

Publish = Callable[[Iterable[Envelope]], None]

#: Event time origin: a day ago, whole seconds.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
OLD = timedelta(days=30)  # how long before BASE the established accounts registered
DAY_S = 86_400


def at(offset: timedelta) -> datetime:
    return BASE + offset


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


class Shop:
    """Builds the envelopes of one test: ids carry a fresh tag, amounts are in EUR cents."""

    def __init__(self, settings: Settings) -> None:
        self.tag = secrets.token_hex(3)
        self.region_a, self.region_b = settings.regions
        self.octets = f"{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        self.checkouts: dict[str, Envelope] = {}

    def id(self, prefix: str, name: str) -> str:
        return f"{prefix}_{self.tag}_{name}"

    def ip(self, host: int) -> str:
        return f"10.{self.octets}.{host}"

    def registered(
        self, customer: str, when: datetime, *, home: str = "eu", region: str | None = None
    ) -> Envelope:
        return REGISTRY.new_event(
            "user.registered",
            {"customer_id": self.id("cus", customer), "region": home, "country": "DE"},
            region=region or self.region_a,
            occurred_at=when,
        )

    def checkout(
        self,
        name: str,
        customer: str,
        when: datetime,
        amount: int,
        *,
        quantity: int = 1,
        country: str = "DE",
        device: str | None = None,
        ip: int | None = None,
        ip_region: str = "eu",
        card: str | None = None,
        region: str | None = None,
    ) -> Envelope:
        """A checkout.started of ``amount`` cents: one line of ``quantity`` units."""
        envelope = REGISTRY.new_event(
            "checkout.started",
            {
                "checkout_id": self.id("chk", name),
                "cart_id": self.id("crt", name),
                "customer_id": self.id("cus", customer),
                "lines": [
                    {
                        "line_id": "ln_1",
                        "sku": "SKU-1",
                        "product_id": "prd_1",
                        "seller_id": "sel_1",
                        "quantity": quantity,
                        "unit_price": {"amount_minor": amount // quantity, "currency": "EUR"},
                    }
                ],
                "subtotal": {"amount_minor": amount, "currency": "EUR"},
                "shipping_address": {"country": country},
                "device_id": self.id("dev", device or customer),
                "client_ip": self.ip(ip if ip is not None else 1),
                "ip_region": ip_region,
                "instrument_id": self.id("ins", card or customer),
            },
            region=region or self.region_a,
            occurred_at=when,
        )
        self.checkouts[name] = envelope
        return envelope


# --- the patterns ------------------------------------------------------------------------------


def first_half(shop: Shop) -> list[Envelope]:
    """Every registration and the orders before the restart."""
    s, b = shop, shop.region_b
    old = at(-OLD)
    return [
        *(
            s.registered(name, old)
            for name in ("honest", "velocity", "outlier", "bulk", "ship", "ip", "tester")
        ),
        *(s.registered(name, old, region=b) for name in ("ring1", "ring2", "ring3", "multi")),
        s.registered("fresh", at(hours(5))),
        # honest: three ordinary orders 10 minutes apart (the third after the restart)
        s.checkout("honest1", "honest", at(minutes(0)), 2000, ip=10),
        s.checkout("honest2", "honest", at(minutes(10)), 2500, quantity=2, ip=10),
        # velocity: three orders within a minute
        s.checkout("velocity1", "velocity", at(hours(1)), 1500, ip=11),
        s.checkout("velocity2", "velocity", at(hours(1) + timedelta(seconds=20)), 1500, ip=11),
        # amount outlier: five orders two hours apart, then one far above them
        *(
            s.checkout(f"outlier{i + 1}", "outlier", at(hours(2 * i)), amount, ip=12)
            for i, amount in enumerate((1000, 1200, 1000, 1200, 1100))
        ),
        # bulk: twelve units of one SKU
        s.checkout("bulk1", "bulk", at(hours(3)), 4800, quantity=12, ip=13),
        # a ten-minute-old account ordering for 600 EUR
        s.checkout("fresh1", "fresh", at(hours(5) + minutes(10)), 60_000, ip=14),
        # card testing: one device, three cards, 10 minutes apart
        s.checkout("tester1", "tester", at(hours(8)), 2000, device="shared", card="t1", ip=15),
        s.checkout(
            "tester2", "tester", at(hours(8) + minutes(10)), 2000, device="shared", card="t2", ip=15
        ),
        # one card (and one IP) used by three accounts, in the second region
        *(
            s.checkout(
                f"ring{i}",
                f"ring{i}",
                at(hours(9) + minutes(10 * (i - 1))),
                3000,
                card="stolen",
                ip=16,
                region=b,
            )
            for i in (1, 2)
        ),
    ]


def second_half(shop: Shop) -> list[Envelope]:
    """The orders after the restart, then a late registration that moves the watermark."""
    s, b = shop, shop.region_b
    return [
        s.checkout("honest3", "honest", at(minutes(20)), 3000, ip=10),
        s.checkout("velocity3", "velocity", at(hours(1) + timedelta(seconds=40)), 1500, ip=11),
        s.checkout("outlier6", "outlier", at(hours(10)), 9000, ip=12),
        s.checkout(
            "tester3", "tester", at(hours(8) + minutes(20)), 2000, device="shared", card="t3", ip=15
        ),
        s.checkout(
            "ring3", "ring3", at(hours(9) + minutes(20)), 3000, card="stolen", ip=16, region=b
        ),
        # shipped to the US from an EU account
        s.checkout("ship1", "ship", at(hours(6)), 5000, country="US", ip=17),
        # ordered from an Indian IP by an EU account
        s.checkout("ip1", "ip", at(hours(7)), 5000, ip=18, ip_region="in"),
        # everything at once: bulk, shipped abroad, from abroad
        s.checkout(
            "multi1",
            "multi",
            at(hours(9) + minutes(30)),
            7500,
            quantity=15,
            country="US",
            ip=19,
            ip_region="in",
            region=b,
        ),
        s.registered("clock", at(hours(12))),
    ]


def customer_row(
    orders: tuple[int, int, int],
    age_s: int,
    *,
    mean: float = 0.0,
    std: float = 0.0,
    zscore: float = 0.0,
    ship: int = 0,
    ip: int = 0,
    quantity: int = 1,
    new_high: int = 0,
) -> dict[str, Any]:
    return {
        "orders_1m": orders[0],
        "orders_1h": orders[1],
        "orders_24h": orders[2],
        "amount_mean_minor": mean,
        "amount_std_minor": std,
        "amount_zscore": zscore,
        "ship_region_mismatch": ship,
        "ip_region_mismatch": ip,
        "max_line_quantity": quantity,
        "new_account_high_value": new_high,
        "account_age_s": age_s,
    }


OLD_S = 30 * DAY_S


def expected_features(shop: Shop) -> dict[str, dict[str, dict[str, Any]]]:
    """view → entity id → feature values, once both halves are in."""
    s = shop
    return {
        "customer_fraud_signals": {
            # prior orders 2000 and 2500: mean 2250, sample std sqrt(125000); the spread
            # divided by is max(std, 100, 25% of the mean) = 562.5
            s.id("cus", "honest"): customer_row(
                (1, 3, 3),
                OLD_S + 20 * 60,
                mean=2250.0,
                std=math.sqrt(125_000),
                zscore=750 / 562.5,
                quantity=1,
            ),
            s.id("cus", "velocity"): customer_row((3, 3, 3), OLD_S + 3600 + 40, mean=1500.0),
            # prior 1000, 1200, 1000, 1200, 1100: mean 1100, std 100, spread 275
            s.id("cus", "outlier"): customer_row(
                (1, 1, 6), OLD_S + 10 * 3600, mean=1100.0, std=100.0, zscore=7900 / 275
            ),
            s.id("cus", "bulk"): customer_row((1, 1, 1), OLD_S + 3 * 3600, quantity=12),
            s.id("cus", "fresh"): customer_row((1, 1, 1), 600, new_high=1),
            s.id("cus", "ship"): customer_row((1, 1, 1), OLD_S + 6 * 3600, ship=1),
            s.id("cus", "ip"): customer_row((1, 1, 1), OLD_S + 7 * 3600, ip=1),
            s.id("cus", "tester"): customer_row((1, 3, 3), OLD_S + 8 * 3600 + 20 * 60, mean=2000.0),
            s.id("cus", "multi"): customer_row(
                (1, 1, 1), OLD_S + 9 * 3600 + 30 * 60, ship=1, ip=1, quantity=15
            ),
        },
        "device_fraud_signals": {
            s.id("dev", "honest"): {
                "orders_1h": 3,
                "orders_24h": 3,
                "distinct_instruments_24h": 1,
                "distinct_customers_24h": 1,
            },
            s.id("dev", "shared"): {
                "orders_1h": 3,
                "orders_24h": 3,
                "distinct_instruments_24h": 3,
                "distinct_customers_24h": 1,
            },
        },
        "instrument_fraud_signals": {
            s.id("ins", "honest"): {"orders_1h": 3, "orders_24h": 3, "distinct_customers_24h": 1},
            s.id("ins", "stolen"): {"orders_1h": 3, "orders_24h": 3, "distinct_customers_24h": 3},
            s.id("ins", "outlier"): {"orders_1h": 1, "orders_24h": 6, "distinct_customers_24h": 1},
        },
        "ip_fraud_signals": {
            s.ip(10): {"orders_1h": 3, "orders_24h": 3, "distinct_customers_24h": 1},
            s.ip(16): {"orders_1h": 3, "orders_24h": 3, "distinct_customers_24h": 3},
        },
    }


#: checkout name → the rules its alert carries (every other checkout raises none).
EXPECTED_ALERTS: dict[str, list[str]] = {
    "bulk1": [fr.BULK_QUANTITY],
    "fresh1": [fr.NEW_ACCOUNT_HIGH_VALUE],
    "velocity3": [fr.VELOCITY],
    "outlier6": [fr.AMOUNT_OUTLIER],
    "tester3": [fr.DEVICE_MANY_INSTRUMENTS],
    "ring3": [fr.INSTRUMENT_MANY_CUSTOMERS],
    "ship1": [fr.SHIP_REGION_MISMATCH],
    "ip1": [fr.IP_REGION_MISMATCH],
    "multi1": [fr.BULK_QUANTITY, fr.SHIP_REGION_MISMATCH, fr.IP_REGION_MISMATCH],
}
VERDICTS = {1: (0.5, "medium", "review"), 3: (0.875, "critical", "hold")}


# --- reading the results -----------------------------------------------------------------------

JOIN_KEYS = {view: key for view, key in fr.VIEWS.values()}


def online(store: Any, view: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Feast's online values of ``view`` for ``ids`` (Feast's own get_online_features)."""
    ids = list(ids)
    names = [field.name for field in FRAUD_VIEWS[view].features]
    key = JOIN_KEYS[view]
    got = store.get_online_features(
        features=[f"{view}:{name}" for name in names],
        entity_rows=[{key: entity} for entity in ids],
    ).to_dict()
    return {entity: {name: got[name][i] for name in names} for i, entity in enumerate(ids)}


def all_online(store: Any, want: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    return {view: online(store, view, rows) for view, rows in want.items()}


class AlertReader:
    """Reads the fraud topics of both regions from the start, keeping every alert."""

    def __init__(self, bootstrap: str, settings: Settings) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-fraud-{secrets.token_hex(4)}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic_for("fraud", region) for region in settings.regions])
        self.records: list[tuple[str, str, bytes]] = []  # (topic, key, value)

    def read(self, until: Callable[[], bool], timeout_s: float = 90.0, quiet_s: float = 0) -> None:
        """Poll until ``until()`` holds (then ``quiet_s`` more), or fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"alerts not all in after {timeout_s:.0f} s: {self.by_key()}")
            self._poll(0.5)
        quiet = time.monotonic() + quiet_s
        while time.monotonic() < quiet:
            self._poll(0.25)

    def _poll(self, wait_s: float) -> None:
        message = self.consumer.poll(wait_s)
        if message is None or message.error() or message.value() is None:
            return
        self.records.append((message.topic(), message.key().decode(), message.value()))

    def by_key(self) -> dict[str, list[Envelope]]:
        found: dict[str, list[Envelope]] = {}
        for _topic, key, value in self.records:
            found.setdefault(key, []).append(REGISTRY.decode(value))
        return found

    def close(self) -> None:
        self.consumer.close()


def expected_alerts(shop: Shop, names: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """alert id → (topic, payload) of the alerts of ``names``' checkouts."""
    out = {}
    for name in names:
        checkout = shop.checkouts[name]
        rules = EXPECTED_ALERTS[name]
        score, severity, action = VERDICTS[len(rules)]
        order = fr.order_of(
            checkout.payload, round(checkout.occurred_at.timestamp() * 1000), checkout.region
        )
        payload = {
            "alert_id": fr.alert_id(order),
            "subject_type": "order",
            "subject_id": checkout.payload["checkout_id"],
            "order_id": None,
            "payment_id": None,
            "customer_id": checkout.payload["customer_id"],
            "score": score,
            "severity": severity,
            "rules": rules,
            "model_version": None,
            "action": action,
        }
        out[payload["alert_id"]] = (topic_for("fraud", checkout.region), payload)
    return out


def check_alerts(reader: AlertReader, shop: Shop, want: dict[str, Any]) -> None:
    """Exactly the wanted alerts (duplicates are byte-identical replays), nothing else."""
    seen = reader.by_key()
    assert set(seen) == set(want), f"alerts {sorted(seen)} != {sorted(want)}"
    values: dict[str, set[bytes]] = {}
    for topic, key, value in reader.records:
        assert topic == want[key][0]
        values.setdefault(key, set()).add(value)
    # a republished alert (after the restart) is the very same event
    assert all(len(v) == 1 for v in values.values()), values
    for key, envelopes in seen.items():
        envelope = envelopes[0]
        assert envelope.event_type == "fraud.alert_raised"
        assert envelope.aggregate_id == key
        checkout = shop.checkouts[envelope.payload["subject_id"].split("_", 2)[2]]
        assert envelope.occurred_at == checkout.occurred_at
        assert envelope.causation_id == checkout.event_id
        assert envelope.region == checkout.region
        assert envelope.event_id == fr.stable_uuid(
            round(checkout.occurred_at.timestamp() * 1000),
            "event:" + checkout.payload["checkout_id"],
        )
        assert envelope.payload == want[key][1]


# --- the test ----------------------------------------------------------------------------------


def test_fraud_patterns_give_exact_features_and_alerts_across_a_restart(
    stream_settings: Settings, stream_servers: Servers, publish: Publish
) -> None:
    started = time.monotonic()
    shop = Shop(stream_settings)
    store = feature_store(stream_settings, stream_servers.redis_url)
    reader = AlertReader(stream_servers.kafka_bootstrap, stream_settings)
    want = expected_features(shop)
    try:
        # run 1: the first half, until a checkpoint holds it; then a crash
        publish(first_half(shop))
        control.start(stream_settings, "fraud")
        first = {
            "customer_fraud_signals": {
                shop.id("cus", "outlier"): {"orders_24h": 5, "amount_mean_minor": 1100.0},
                shop.id("cus", "fresh"): {"new_account_high_value": 1, "account_age_s": 600},
                shop.id("cus", "velocity"): {"orders_1m": 2},
            },
            "device_fraud_signals": {shop.id("dev", "shared"): {"distinct_instruments_24h": 2}},
            "instrument_fraud_signals": {shop.id("ins", "stolen"): {"distinct_customers_24h": 2}},
        }

        def landed() -> bool:
            got = all_online(store, first)
            return all(
                got[view][entity][name] == value
                for view, rows in first.items()
                for entity, values in rows.items()
                for name, value in values.items()
            )

        wait_for(landed, timeout_s=120)
        first_alerts = expected_alerts(shop, ["bulk1", "fresh1"])
        reader.read(lambda: set(reader.by_key()) >= set(first_alerts))
        done = checkpoint_number(latest_checkpoint(stream_settings, "fraud")) or 0
        wait_for(
            lambda: (checkpoint_number(latest_checkpoint(stream_settings, "fraud")) or 0) > done + 1
        )
        assert control.kill(stream_settings, "fraud")

        # run 2: the rest arrives while it is down; it resumes from the checkpoint
        publish(second_half(shop))
        control.start(stream_settings, "fraud")
        log = control.runs_dir(stream_settings) / "fraud.log"
        every = expected_alerts(shop, EXPECTED_ALERTS)
        reader.read(lambda: set(reader.by_key()) >= set(every), quiet_s=3)
        wait_for(lambda: all_online(store, want) == want, timeout_s=60)
        assert "resuming from file:" in log.read_text()
    finally:
        control.stop(stream_settings, "fraud")
        reader.close()
    assert all_online(store, want) == want
    # the honest customer, the early orders of each pattern: no alert
    check_alerts(reader, shop, every)
    print(f"fraud test: {time.monotonic() - started:.1f} s")


def test_the_jobs_store_overwrites_a_value_pushed_at_the_same_event_time(
    stream_settings: Settings, stream_servers: Servers
) -> None:
    """Feast skips a write not newer than the stored one; the job's store does not, so a
    value recomputed at the same event time (an out-of-order or replayed event) lands."""
    store = job_feature_store(stream_settings, stream_servers.redis_url)
    apply(store)
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    view = "ip_fraud_signals"

    writer = OnlineWriter(store)  # how the job writes

    def push(orders: int) -> None:
        row = {"client_ip": ip, "orders_1h": orders, "orders_24h": orders}
        writer.write(view, [{**row, "distinct_customers_24h": 1, "event_timestamp": BASE}])

    push(1)
    push(2)
    assert online(store, view, [ip])[ip]["orders_1h"] == 2
    plain = feature_store(stream_settings, stream_servers.redis_url)  # Feast's default check
    row = {"client_ip": ip, "orders_1h": 3, "orders_24h": 3, "distinct_customers_24h": 1}
    push_signals(plain, view, [{**row, "event_timestamp": BASE}])
    assert online(plain, view, [ip])[ip]["orders_1h"] == 2


def test_the_jobs_writer_stores_what_a_feast_push_stores(
    stream_settings: Settings, stream_servers: Servers
) -> None:
    """The job writes protos straight to the online store (no DataFrame): every view's values,
    read back through Feast, equal those of ``push_signals`` for the same rows."""
    store = job_feature_store(stream_settings, stream_servers.redis_url)
    apply(store)
    tag = secrets.token_hex(3)
    history = fr.History()
    history.register(fr.Account("eu", int(at(-OLD).timestamp() * 1000)))
    for i, amount in enumerate((1999, 2500, 1234, 98_765)):
        order = fr.Order(
            checkout_id=f"chk_{tag}_{i}",
            customer_id=f"cus_{tag}",
            at_ms=int(at(minutes(i)).timestamp() * 1000),
            amount_minor=amount,
            region="eu",
            currency="EUR",
            ship_region="us",
            ip_region="eu",
            device_id=f"dev_{tag}",
            client_ip=f"10.0.{secrets.randbelow(250)}.{i + 1}",
            instrument_id=f"ins_{tag}_{i % 2}",
            max_quantity=12,
        )
        history.add(order)
    latest = history.latest()
    assert latest is not None
    writer = OnlineWriter(store)
    for kind, entity in latest.entities():
        view, key = fr.VIEWS[kind]
        row = fr.feature_row(fr.features(kind, entity, history, latest))
        pushed, written = f"push-{entity}", f"write-{entity}"
        push_signals(store, view, [{**row, key: pushed}])
        writer.write(view, [{**row, key: written}])
        got = online(store, view, [pushed, written])
        assert got[written] == got[pushed]
        assert all(value is not None for value in got[written].values())
