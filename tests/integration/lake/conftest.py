"""Lake tests: bronze tables written exactly as the archiver writes them, from hand-made events.

The shop below is small enough to compute every gold value by hand (see ``Expected``): two
batches of events (the second one arrives after a first full silver/gold run, and holds a late
status change of an order from the first), plus re-archived copies of two events that silver
must count once.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.archive import bronze_row
from jobs.lake.delta_rs import DeltaRsStore
from jobs.lake.store import lake_root
from jobs.lake.tables import BRONZE_KEYS, BRONZE_PARTITIONS, BRONZE_SCHEMA, bronze_table
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings

#: The gold jobs' as-of time in these tests (ages and recency are counted up to it).
AS_OF = datetime(2026, 3, 10, tzinfo=UTC)
#: The incremental runs reprocess event dates from this day on.
SINCE = date(2026, 3, 3)
HALF_LIFE_DAYS = 30.0


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of March 2026 (UTC)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def lake_settings_at(home: Path) -> Settings:
    """Settings whose lake lives under ``home`` (nothing else is configured)."""
    return Settings(_env_file=None, home=home)  # type: ignore[call-arg]


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    """Settings with a private SOUK_HOME (the lake is ``<home>/lake``)."""
    return lake_settings_at(tmp_path / "home")


def lake_store(settings: Settings) -> DeltaRsStore:
    """The delta-rs store of the lake in ``settings``."""
    return DeltaRsStore(lake_root(settings))


# -- writing bronze ----------------------------------------------------------------------------


def write_bronze(store: DeltaRsStore, envelopes: Iterable[Envelope], archived_at: datetime) -> int:
    """Archive ``envelopes`` as the archiver does (insert-only MERGE per domain); rows added."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for offset, envelope in enumerate(envelopes):
        domain = REGISTRY.spec(envelope.event_type).domain
        topic = topic_for(domain, envelope.region)
        rows[bronze_table(domain)].append(bronze_row(envelope, topic, 0, offset, archived_at))
    added = 0
    for table, table_rows in rows.items():
        result = store.merge(
            table,
            pa.Table.from_pylist(table_rows, schema=BRONZE_SCHEMA),
            BRONZE_KEYS,
            update=False,
            partition_by=BRONZE_PARTITIONS,
        )
        added += result.inserted
    return added


def append_copy(store: DeltaRsStore, envelope: Envelope, archived_at: datetime) -> None:
    """A second bronze row of ``envelope`` (a redelivery archived again by a plain append)."""
    domain = REGISTRY.spec(envelope.event_type).domain
    row = bronze_row(envelope, topic_for(domain, envelope.region), 1, 10_000, archived_at)
    store.append(
        bronze_table(domain),
        pa.Table.from_pylist([row], schema=BRONZE_SCHEMA),
        partition_by=BRONZE_PARTITIONS,
    )


# -- events ------------------------------------------------------------------------------------


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    """A Money payload."""
    return {"amount_minor": amount_minor, "currency": currency}


@dataclass(frozen=True)
class Line:
    """One order line: product, seller, quantity, unit price, line discount (minor units)."""

    product: str
    seller: str
    quantity: int
    unit: int
    discount: int = 0


def event(event_type: str, payload: dict[str, Any], when: datetime, region: str) -> Envelope:
    """A validated envelope of ``event_type`` that occurred at ``when``."""
    return REGISTRY.new_event(event_type, payload, region=region, occurred_at=when)


def viewed(
    session: str, product: str, customer: str | None, when: datetime, region: str = "eu"
) -> Envelope:
    """product.viewed."""
    payload = {"session_id": session, "customer_id": customer, "product_id": product}
    return event("product.viewed", payload, when, region)


def cart_added(
    session: str, customer: str, line: Line, currency: str, when: datetime, region: str = "eu"
) -> Envelope:
    """cart.item_added of one line's quantity into the session's cart."""
    payload = {
        "cart_id": f"cart-{session}",
        "session_id": session,
        "customer_id": customer,
        "sku": f"sku-{line.product}",
        "product_id": line.product,
        "seller_id": line.seller,
        "quantity": line.quantity,
        "quantity_in_cart": line.quantity,
        "unit_price": money(line.unit, currency),
    }
    return event("cart.item_added", payload, when, region)


def _lines(lines: Sequence[Line], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "line_id": f"l{n}",
            "sku": f"sku-{line.product}",
            "product_id": line.product,
            "seller_id": line.seller,
            "quantity": line.quantity,
            "unit_price": money(line.unit, currency),
            "warehouse_id": "wh-1",
            **({"discount": money(line.discount, currency)} if line.discount else {}),
        }
        for n, line in enumerate(lines, start=1)
    ]


def order_total(lines: Sequence[Line]) -> int:
    """Grand total of an order without shipping or tax (minor units)."""
    return sum(line.quantity * line.unit - line.discount for line in lines)


def placed(
    order: str,
    customer: str,
    lines: Sequence[Line],
    currency: str,
    when: datetime,
    region: str = "eu",
    checkout: str | None = None,
) -> Envelope:
    """order.placed with one fulfilment group per seller."""
    items = _lines(lines, currency)
    subtotal = sum(line.quantity * line.unit for line in lines)
    discount = sum(line.discount for line in lines)
    groups: dict[str, list[str]] = defaultdict(list)
    for item in items:
        groups[item["seller_id"]].append(item["line_id"])
    payload = {
        "order_id": order,
        "customer_id": customer,
        "checkout_id": checkout,
        "region": region,
        "lines": items,
        "totals": {
            "subtotal": money(subtotal, currency),
            "discount": money(discount, currency),
            "shipping": money(0, currency),
            "tax": money(0, currency),
            "grand_total": money(subtotal - discount, currency),
        },
        "shipping_address": {"country": "DE" if region == "eu" else "US"},
        "fulfilment_groups": [
            {
                "group_id": f"g-{seller}",
                "seller_id": seller,
                "warehouse_id": "wh-1",
                "line_ids": ids,
            }
            for seller, ids in groups.items()
        ],
        "payment_method": "card",
    }
    return event("order.placed", payload, when, region)


def paid(
    order: str, customer: str, amount: int, currency: str, when: datetime, region: str = "eu"
) -> Envelope:
    """order.paid."""
    payload = {
        "order_id": order,
        "customer_id": customer,
        "payment_id": f"pay-{order}",
        "amount": money(amount, currency),
        "method": "card",
    }
    return event("order.paid", payload, when, region)


def order_event(event_type: str, order: str, customer: str, when: datetime) -> Envelope:
    """order.cancelled (whole order) or order.shipped of an eu order."""
    if event_type == "order.cancelled":
        payload: dict[str, Any] = {
            "order_id": order,
            "customer_id": customer,
            "reason": "payment_failed",
            "cancelled_by": "system",
        }
    else:
        payload = {
            "order_id": order,
            "customer_id": customer,
            "fulfilment_group_id": "g-1",
            "shipment_id": f"shp-{order}",
            "warehouse_id": "wh-1",
            "carrier": "dhl",
        }
    return event(event_type, payload, when, "eu")


def payment(
    event_type: str, order: str, customer: str, amount: int, when: datetime, **extra: Any
) -> Envelope:
    """payment.authorized / captured / failed of an eu order in EUR."""
    payload = {
        "payment_id": f"pay-{order}",
        "order_id": order,
        "customer_id": customer,
        "amount": money(amount, "EUR"),
        "method": "card",
        **extra,
    }
    return event(event_type, payload, when, "eu")


def checkout(
    event_type: str, checkout_id: str, customer: str, when: datetime, **extra: Any
) -> Envelope:
    """checkout.started / checkout.completed in eu."""
    return event(
        event_type, {"checkout_id": checkout_id, "customer_id": customer, **extra}, when, "eu"
    )


# The shop: products p1..p3, sellers sa and sb, customers c1, c2 (eu, EUR) and c3 (us, USD).
O1 = [Line("p1", "sa", 2, 1000), Line("p2", "sb", 1, 500, discount=100)]
O2 = [Line("p1", "sa", 1, 1000), Line("p3", "sa", 3, 200)]
O3 = [Line("p1", "sa", 1, 1200)]
O4 = [Line("p2", "sb", 1, 500)]
O5 = [Line("p2", "sb", 2, 500), Line("p1", "sa", 1, 1000)]


@dataclass
class Shop:
    """The events of both batches, and the ones archived twice."""

    first: list[Envelope] = field(default_factory=list)
    second: list[Envelope] = field(default_factory=list)
    copied_first: list[Envelope] = field(default_factory=list)
    copied_second: list[Envelope] = field(default_factory=list)
    named: dict[str, Envelope] = field(default_factory=dict)


def shop() -> Shop:
    """Fresh envelopes (new event ids) of the hand-computed shop."""
    s = Shop()
    c1_view_p1 = viewed("s1", "p1", "c1", at(1, 10, 0))
    c1_view_p2 = viewed("s1", "p2", "c1", at(1, 10, 1))
    c1_cart_p1 = cart_added("s1", "c1", O1[0], "EUR", at(1, 10, 2))
    o1 = placed("o1", "c1", O1, "EUR", at(1, 10, 6), checkout="ch1")
    c3_view_p1 = viewed("s4", "p1", "c3", at(3, 8, 0), region="us")
    s.named = {"c1_view_p1": c1_view_p1, "c1_view_p2": c1_view_p2, "c1_cart_p1": c1_cart_p1}
    s.named |= {"o1": o1, "c3_view_p1": c3_view_p1}
    s.first = [
        # c1's session s1 in eu: two views, a cart add, a checkout that became order o1
        c1_view_p1,
        c1_view_p2,
        c1_cart_p1,
        checkout(
            "checkout.started",
            "ch1",
            "c1",
            at(1, 10, 5),
            cart_id="cart-s1",
            session_id="s1",
            lines=_lines(O1, "EUR"),
            subtotal=money(2500, "EUR"),
            shipping_address={"country": "DE"},
        ),
        o1,
        payment(
            "payment.authorized", "o1", "c1", order_total(O1), at(1, 10, 6), gateway="stripe-eu"
        ),
        payment("payment.captured", "o1", "c1", order_total(O1), at(1, 10, 7)),
        paid("o1", "c1", order_total(O1), "EUR", at(1, 10, 7)),
        checkout("checkout.completed", "ch1", "c1", at(1, 10, 8), order_id="o1"),
        # c2 (session s2) views p1 and p3 and orders both; an anonymous visitor views p1
        viewed("s2", "p1", "c2", at(2, 9, 0)),
        viewed("s2", "p3", "c2", at(2, 9, 1)),
        placed("o2", "c2", O2, "EUR", at(2, 9, 10)),
        paid("o2", "c2", order_total(O2), "EUR", at(2, 9, 11)),
        viewed("s3", "p1", None, at(2, 12, 0)),
        # c3 in us pays in USD
        c3_view_p1,
        placed("o3", "c3", O3, "USD", at(3, 8, 5), region="us"),
        paid("o3", "c3", order_total(O3), "USD", at(3, 8, 6), region="us"),
        # c1's second order o4 fails payment and is cancelled
        placed("o4", "c1", O4, "EUR", at(3, 15, 0)),
        payment(
            "payment.failed",
            "o4",
            "c1",
            order_total(O4),
            at(3, 15, 1),
            stage="authorization",
            error_code="declined",
        ),
        order_event("order.cancelled", "o4", "c1", at(3, 15, 30)),
    ]
    s.copied_first = [c1_view_p2]
    s.second = [
        # c2 comes back (session s5): views p2 and p1, adds p2, orders o5
        viewed("s5", "p2", "c2", at(4, 10, 0)),
        viewed("s5", "p1", "c2", at(4, 10, 1)),
        cart_added("s5", "c2", O5[0], "EUR", at(4, 10, 2)),
        placed("o5", "c2", O5, "EUR", at(4, 10, 5)),
        paid("o5", "c2", order_total(O5), "EUR", at(4, 10, 6)),
        # c3 views p3 in us; o1 (placed on the 1st) ships on the 4th
        viewed("s6", "p3", "c3", at(4, 11, 0), region="us"),
        order_event("order.shipped", "o1", "c1", at(4, 12, 0)),
        # late: an anonymous view of p3 on the 3rd, archived only now (inside the window)
        viewed("s7", "p3", None, at(3, 20, 0)),
    ]
    # The us view of the 3rd is archived again with the second batch (inside the window).
    s.copied_second = [c3_view_p1]
    return s


def first_archive(store: DeltaRsStore, events: Shop) -> None:
    """Batch one into bronze, with its re-archived copy."""
    write_bronze(store, events.first, at(3, 23))
    for envelope in events.copied_first:
        append_copy(store, envelope, at(4, 0))


def second_archive(store: DeltaRsStore, events: Shop) -> None:
    """Batch two into bronze, with its re-archived copy."""
    write_bronze(store, events.second, at(4, 23))
    for envelope in events.copied_second:
        append_copy(store, envelope, at(5, 0))


# -- reading the results -----------------------------------------------------------------------


def rows(store: DeltaRsStore, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, in a stable order."""
    found = store.read(table).to_pylist()
    return sorted(found, key=lambda row: json.dumps(row, default=str, sort_keys=True))


def by(store: DeltaRsStore, table: str, *keys: str) -> dict[Any, dict[str, Any]]:
    """Rows of ``table`` by their key columns (one key: the value; several: a tuple)."""
    found = {}
    for row in rows(store, table):
        key = row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)
        assert key not in found, f"{table}: duplicate key {key}"
        found[key] = row
    return found


def decayed(weight: int, when: datetime) -> float:
    """One signal's interaction strength at AS_OF."""
    age_days = (AS_OF - when).total_seconds() / 86_400
    return weight * math.exp(-math.log(2) * age_days / HALF_LIFE_DAYS)


def assert_gold(store: DeltaRsStore, events: Shop) -> None:
    """The gold tables hold the values computed by hand from ``shop()``."""
    named = events.named
    pairs = by(store, "gold/user_item_interactions", "customer_id", "product_id")
    # c1 and p1: a view, a cart add, a purchase (o1), each decayed from its own time
    want = (
        decayed(1, named["c1_view_p1"].occurred_at)
        + decayed(3, named["c1_cart_p1"].occurred_at)
        + decayed(5, named["o1"].occurred_at)
    )
    c1p1 = pairs[("c1", "p1")]
    assert c1p1["strength"] == pytest.approx(want, rel=1e-9)
    assert (c1p1["views"], c1p1["cart_adds"], c1p1["purchases"], c1p1["events"]) == (1, 1, 1, 3)
    assert c1p1["last_at"] == named["o1"].occurred_at
    # c1 and p2: the view archived twice counts once; purchases o1 and o4 (cancelled, still intent)
    c1p2 = pairs[("c1", "p2")]
    want = (
        decayed(1, named["c1_view_p2"].occurred_at)
        + decayed(5, named["o1"].occurred_at)
        + decayed(5, at(3, 15, 0))
    )
    assert c1p2["strength"] == pytest.approx(want, rel=1e-9)
    assert (c1p2["views"], c1p2["purchases"], c1p2["events"]) == (1, 2, 3)
    assert ("c3", "p1") in pairs and all(pair[0] is not None for pair in pairs)

    co = by(store, "gold/co_purchases", "product_a", "product_b")
    assert {pair: row["orders"] for pair, row in co.items()} == {("p1", "p2"): 2, ("p1", "p3"): 1}

    items = by(store, "gold/item_stats", "product_id")
    # p1: views by c1, c2 (twice), the anonymous visitor and c3 (archived twice) = 5;
    # orders o1, o2, o3, o5 = 4
    assert (items["p1"]["views"], items["p1"]["purchases"], items["p1"]["units"]) == (5, 4, 5)
    assert items["p1"]["conversion"] == pytest.approx(4 / 5)
    assert (items["p2"]["views"], items["p2"]["cart_adds"], items["p2"]["purchases"]) == (2, 1, 3)
    assert items["p2"]["conversion"] == pytest.approx(3 / 2)
    # p3: views by c2, c3 and the late anonymous one; order o2
    assert (items["p3"]["views"], items["p3"]["purchases"]) == (3, 1)
    assert items["p3"]["conversion"] == pytest.approx(1 / 3)

    customers = by(store, "gold/customer_stats", "customer_id", "currency")
    assert set(customers) == {("c1", "EUR"), ("c2", "EUR"), ("c3", "USD")}
    c2 = customers[("c2", "EUR")]
    assert (c2["orders"], c2["spend_minor"]) == (2, order_total(O2) + order_total(O5)) == (2, 3600)
    assert (c2["first_order_at"], c2["last_order_at"]) == (at(2, 9, 10), at(4, 10, 5))
    assert c2["recency_days"] == (AS_OF - at(4, 10, 5)).days == 5
    # o4 was cancelled: c1's spend is o1 alone
    assert (customers[("c1", "EUR")]["orders"], customers[("c1", "EUR")]["spend_minor"]) == (
        1,
        2400,
    )
    assert customers[("c3", "USD")]["spend_minor"] == 1200

    sellers = by(store, "gold/seller_stats", "seller_id", "currency")
    # sa in EUR: o1 2x1000, o2 1x1000 + 3x200, o5 1x1000; in USD: o3 1x1200 (never summed)
    assert sellers[("sa", "EUR")] == {
        "seller_id": "sa",
        "currency": "EUR",
        "orders": 3,
        "units": 7,
        "revenue_minor": 4600,
    }
    assert (sellers[("sa", "USD")]["orders"], sellers[("sa", "USD")]["revenue_minor"]) == (1, 1200)
    # sb: o1 1x500 - 100 discount, o5 2x500; o4 cancelled
    assert (sellers[("sb", "EUR")]["units"], sellers[("sb", "EUR")]["revenue_minor"]) == (3, 1400)

    trending = by(store, "gold/trending_daily", "day", "region", "rank")
    day = {
        (key[0].day, key[1], key[2]): (row["product_id"], row["score"])
        for key, row in trending.items()
    }
    # 1st, eu: p1 view 1 + cart 3 + purchase 5; p2 view 1 (archived twice) + purchase 5
    assert (day[(1, "eu", 1)], day[(1, "eu", 2)]) == (("p1", 9), ("p2", 6))
    assert (day[(2, "eu", 1)], day[(2, "eu", 2)]) == (("p1", 7), ("p3", 6))
    assert (day[(4, "eu", 1)], day[(4, "eu", 2)]) == (("p2", 9), ("p1", 6))
    assert day[(4, "us", 1)] == ("p3", 1)
    assert day[(3, "us", 1)] == ("p1", 6)  # c3's view (archived twice) + purchase
    # 3rd, eu: o4's p2 (cancelled later: still a purchase signal), then the late view of p3
    assert (day[(3, "eu", 1)], day[(3, "eu", 2)]) == (("p2", 5), ("p3", 1))


def same_tables(left: DeltaRsStore, right: DeltaRsStore, tables: Sequence[str]) -> None:
    """Every table holds the same rows in both lakes (floats to 9 significant digits)."""

    def norm(value: Any) -> Any:
        return float(f"{value:.9g}") if isinstance(value, float) else value

    for table in tables:
        mine = [{k: norm(v) for k, v in row.items()} for row in rows(left, table)]
        theirs = [{k: norm(v) for k, v in row.items()} for row in rows(right, table)]
        assert mine == theirs, f"{table} differs"
