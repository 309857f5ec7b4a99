"""The fraud job's pure signals and rules: windows, moments, thresholds, as-of semantics,
feature rows matching the Feast views, and deterministic, schema-valid alerts."""

from __future__ import annotations

import math
import pickle
import random
import statistics
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from features.views import FRAUD_VIEWS, TIMESTAMP_FIELD
from pipelines import fraud_rules as fr
from schemas.ids import parse_id, uuid7_time_ms
from schemas.registry import REGISTRY

T0 = 1_750_000_000_000  # epoch ms


def order(
    n: int,
    at_ms: int = T0,
    amount: int = 1000,
    *,
    customer: str = "cus_1",
    **fields: Any,
) -> fr.Order:
    return fr.Order(
        checkout_id=f"chk_{n}",
        customer_id=customer,
        at_ms=at_ms,
        amount_minor=amount,
        region="eu",
        **fields,
    )


def history(*orders: fr.Order, account: fr.Account | None = None) -> fr.History:
    found = fr.History(account=account)
    for each in orders:
        found.add(each)
    return found


# --- windows, moments, thresholds --------------------------------------------------------------


def test_velocity_counts_the_half_open_window_ending_at_the_order() -> None:
    times = [T0 - fr.MINUTE_MS, T0 - fr.MINUTE_MS + 1, T0 - 1, T0, T0 + 1]
    assert fr.velocity(times, T0, fr.MINUTE_MS) == 3  # not the one a full minute back
    assert fr.velocity(times, T0, fr.HOUR_MS) == 4  # never a later one
    assert fr.velocity([], T0, fr.DAY_MS) == 0


def test_moments_agree_with_welford_and_statistics() -> None:
    amounts = [1999, 250, 87_000, 4_321, 4_321, 12]
    moments = fr.Moments()
    for amount in amounts:
        moments = moments.add(amount)
    count, mean, std = fr.welford(amounts)
    assert (moments.count, moments.total) == (6, sum(amounts)) == (count, sum(amounts))
    assert moments.mean == pytest.approx(mean) == pytest.approx(statistics.fmean(amounts))
    assert moments.std == pytest.approx(std) == pytest.approx(statistics.stdev(amounts))
    assert fr.welford([]) == (0, 0.0, 0.0)
    assert fr.welford([5]) == (1, 5.0, 0.0)


def test_moments_are_exact_in_any_order_and_remove_undoes_add() -> None:
    amounts = [random.Random(seed).randrange(1, 10**9) for seed in range(40)]
    results = set()
    for seed in range(5):
        shuffled = amounts[:]
        random.Random(seed).shuffle(shuffled)
        moments = fr.Moments()
        for amount in shuffled:
            moments = moments.add(amount)
        results.add((moments, moments.mean, moments.std))
    assert len(results) == 1  # bit-identical, whatever the order
    moments = fr.Moments().add(10).add(30)
    assert moments.add(500).remove(500) == moments
    assert fr.Moments().add(7).remove(7) == fr.Moments()


def test_std_and_zscore_edges() -> None:
    assert fr.Moments().mean == 0.0 and fr.Moments().std == 0.0
    assert fr.Moments().zscore(10_000) == 0.0  # no history: no score
    one = fr.Moments().add(2000)
    assert one.std == 0.0
    # the spread is at least 100 minor units and a quarter of the mean
    assert one.zscore(3000) == (3000 - 2000) / 500
    small = fr.Moments().add(100).add(100)
    assert small.zscore(400) == (400 - 100) / fr.AMOUNT_STD_FLOOR_MINOR
    wide = fr.Moments().add(1000).add(3000)  # std sqrt(2e6) > 25 % of 2000
    assert wide.std == math.sqrt(2_000_000)
    assert wide.zscore(2000 + 2 * wide.std) == pytest.approx(2.0)
    assert wide.zscore(0) < 0


def test_bulk_new_account_region_and_distinct_thresholds() -> None:
    assert not fr.is_bulk(fr.BULK_QUANTITY_MIN - 1) and fr.is_bulk(fr.BULK_QUANTITY_MIN)
    young = fr.NEW_ACCOUNT_MAX_AGE_MS - 1
    assert fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN_MINOR)
    assert fr.is_new_account_high_value(0, 10**9)
    assert not fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN_MINOR - 1)
    assert not fr.is_new_account_high_value(fr.NEW_ACCOUNT_MAX_AGE_MS, 10**9)
    assert not fr.is_new_account_high_value(None, 10**9)  # never registered: unknown age
    # the threshold is per currency: INR 500.00 is no high-value order
    assert not fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN_MINOR, "INR")
    assert fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN["INR"], "INR")
    assert not fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN["USD"] - 1, "USD")
    assert fr.is_new_account_high_value(young, fr.HIGH_VALUE_MIN_MINOR, "XYZ")  # EUR figure
    assert fr.region_mismatch("us", "eu")
    assert not fr.region_mismatch("eu", "eu")
    assert not fr.region_mismatch(None, "eu") and not fr.region_mismatch("us", None)
    assert fr.distinct(["a", "b", "a", None, ""]) == 2


# --- parsing -----------------------------------------------------------------------------------


def checkout_payload(**extra: Any) -> dict[str, Any]:
    return {
        "checkout_id": "chk_9",
        "cart_id": "crt_9",
        "customer_id": "cus_9",
        "lines": [
            {"quantity": 2, "sku": "A"},
            {"quantity": 11, "sku": "B"},
        ],
        "subtotal": {"amount_minor": 12_345, "currency": "EUR"},
        "shipping_address": {"country": "US"},
        **extra,
    }


def test_order_of_a_checkout_and_account_of_a_registration() -> None:
    full = fr.order_of(
        checkout_payload(
            device_id="dev_1", client_ip="10.0.0.1", ip_region="in", instrument_id="ins_1"
        ),
        T0,
        "eu",
        "evt",
    )
    assert full == fr.Order(
        checkout_id="chk_9",
        customer_id="cus_9",
        at_ms=T0,
        amount_minor=12_345,
        region="eu",
        event_id="evt",
        currency="EUR",
        ship_region="us",
        ip_region="in",
        device_id="dev_1",
        client_ip="10.0.0.1",
        instrument_id="ins_1",
        max_quantity=11,
    )
    assert full.entities() == [
        (fr.CUSTOMER, "cus_9"),
        (fr.INSTRUMENT, "ins_1"),
        (fr.DEVICE, "dev_1"),
        (fr.IP, "10.0.0.1"),
    ]
    assert full.rule_parts() == 3  # the IP feeds no rule
    bare = fr.order_of(checkout_payload(shipping_address={"country": "ZZ"}), T0, "eu")
    assert (bare.ship_region, bare.device_id, bare.client_ip, bare.instrument_id) == (
        None,
        None,
        None,
        None,
    )
    assert bare.entities() == [(fr.CUSTOMER, "cus_9")] and bare.rule_parts() == 1
    with pytest.raises(KeyError):
        fr.order_of({"customer_id": "cus_1"}, T0, "eu")
    assert fr.account_of({"customer_id": "cus_1", "region": "eu"}, T0) == fr.Account("eu", T0)


# --- entity state --------------------------------------------------------------------------------


def test_history_dedupes_prunes_a_day_back_and_keeps_all_time_moments() -> None:
    h = fr.History()
    assert h.add(order(1, T0, 100))
    assert not h.add(order(1, T0, 100))  # redelivered
    h.add(order(2, T0 + fr.HOUR_MS, 200))
    h.mark_evaluated(order(1))
    h.add(order(3, T0 + fr.DAY_MS, 300))  # order 1 is now a full day behind: dropped
    assert sorted(h.orders) == ["chk_2", "chk_3"]
    assert "chk_1" not in h.evaluated
    assert h.moments == fr.Moments(3, 600, 100**2 + 200**2 + 300**2)
    assert h.latest() == order(3, T0 + fr.DAY_MS, 300)


def test_history_state_round_trips_through_plain_tuples() -> None:
    h = fr.History(account=fr.Account("eu", T0 - fr.DAY_MS))
    full = replace(
        order(1, T0, 100),
        event_id="evt-1",
        currency="EUR",
        ship_region="us",
        ip_region="eu",
        device_id="dev_1",
        client_ip="10.0.0.1",
        instrument_id="ins_1",
        max_quantity=12,
    )
    h.add(full)
    h.add(order(2, T0 + 5, 250))
    h.mark_evaluated(full)
    h.due_ms["chk_2"] = 1_234
    state = h.to_state()
    assert pickle.loads(pickle.dumps(state)) == state
    back = fr.History.from_state(state)
    assert back == h
    assert back.orders["chk_1"] == full
    assert back.next_due() == 1_234
    assert fr.History.from_state(fr.History().to_state()) == fr.History()
    assert fr.History().next_due() is None


def test_history_pending_overdue_and_earliest_registration() -> None:
    h = history(order(1, T0), order(2, T0 + 5), order(3, T0 + 5))
    h.due_ms.update({"chk_1": 100, "chk_2": 200, "chk_3": 300})
    assert [o.checkout_id for o in h.pending(at_ms=T0 + 5)] == ["chk_2", "chk_3"]
    assert [o.checkout_id for o in h.overdue(200)] == ["chk_1", "chk_2"]
    h.mark_evaluated(order(2, T0 + 5))
    assert [o.checkout_id for o in h.pending()] == ["chk_1", "chk_3"]
    assert "chk_2" not in h.due_ms
    assert h.register(fr.Account("eu", T0))
    assert not h.register(fr.Account("us", T0 + 1))  # a later duplicate changes nothing
    assert h.register(fr.Account("us", T0 - 1))  # an earlier one is the creation
    assert h.account == fr.Account("us", T0 - 1)


# --- features as of an order --------------------------------------------------------------------


def test_customer_features_as_of_each_order() -> None:
    account = fr.Account("eu", T0 - 3 * fr.HOUR_MS)
    orders = [
        order(1, T0, 2000),
        order(2, T0 + 30_000, 2500),
        order(3, T0 + 50_000, 3000, ship_region="us", ip_region="in", max_quantity=12),
    ]
    h = history(*orders, account=account)
    latest = fr.customer_features(h, orders[2])
    assert latest == {
        "customer_id": "cus_1",
        "orders_1m": 3,
        "orders_1h": 3,
        "orders_24h": 3,
        "amount_mean_minor": 2250.0,
        "amount_std_minor": math.sqrt(125_000),
        "amount_zscore": 750 / 562.5,
        "ship_region_mismatch": 1,
        "ip_region_mismatch": 1,
        "max_line_quantity": 12,
        "new_account_high_value": 0,
        "account_age_s": 3 * 3600 + 50,
        "event_timestamp": datetime.fromtimestamp((T0 + 50_000) / 1000, tz=UTC),
        "_prior_orders": 2,
    }
    second = fr.customer_features(h, orders[1])  # later orders are invisible
    assert (second["orders_1m"], second["amount_mean_minor"], second["_prior_orders"]) == (
        2,
        2000.0,
        1,
    )
    assert second["ship_region_mismatch"] == 0 and second["max_line_quantity"] == 0


def test_features_do_not_depend_on_arrival_order() -> None:
    orders = [
        order(i, T0 + i * 7 * fr.MINUTE_MS, 1000 + 37 * i, instrument_id=f"ins_{i % 3}")
        for i in range(12)
    ]
    rows = set()
    for seed in range(8):
        shuffled = orders[:]
        random.Random(seed).shuffle(shuffled)
        h = history(*shuffled, account=fr.Account("eu", T0))
        latest = h.latest()
        assert latest is not None
        rows.add(tuple(sorted(fr.features(fr.CUSTOMER, "cus_1", h, latest).items())))
        rows.add(tuple(sorted(fr.features(fr.DEVICE, "dev", h, latest).items())))
    assert len(rows) == 2


def test_unknown_account_and_a_new_high_value_order() -> None:
    first = order(1, T0, fr.HIGH_VALUE_MIN_MINOR)
    unknown = fr.customer_features(history(first), first)
    assert unknown["account_age_s"] == fr.UNKNOWN_AGE
    assert unknown["new_account_high_value"] == 0 and unknown["ship_region_mismatch"] == 0
    fresh = fr.customer_features(history(first, account=fr.Account("eu", T0 - 600_000)), first)
    assert (fresh["account_age_s"], fresh["new_account_high_value"]) == (600, 1)
    assert fr.customer_rules(fresh) == [fr.NEW_ACCOUNT_HIGH_VALUE]
    early = fr.customer_features(history(first, account=fr.Account("eu", T0 + 5)), first)
    assert early["account_age_s"] == 0  # a registration stamped after the order


def test_shared_entity_features() -> None:
    orders = [
        order(1, T0 - fr.DAY_MS, customer="cus_0", instrument_id="ins_0"),  # a day back: out
        order(2, T0 - 2 * fr.HOUR_MS, customer="cus_1", instrument_id="ins_1"),
        order(3, T0 - fr.MINUTE_MS, customer="cus_2", instrument_id="ins_1"),
        order(4, T0, customer="cus_2", instrument_id="ins_2"),
    ]
    h = fr.History(orders={o.checkout_id: o for o in orders})
    stamp = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    assert fr.device_features(h, "dev_1", orders[3]) == {
        "device_id": "dev_1",
        "orders_1h": 2,
        "orders_24h": 3,
        "distinct_instruments_24h": 2,
        "distinct_customers_24h": 2,
        "event_timestamp": stamp,
    }
    assert fr.instrument_features(h, "ins_1", orders[3]) == {
        "instrument_id": "ins_1",
        "orders_1h": 2,
        "orders_24h": 3,
        "distinct_customers_24h": 2,
        "event_timestamp": stamp,
    }
    assert fr.ip_features(h, "10.0.0.1", orders[3])["client_ip"] == "10.0.0.1"
    with pytest.raises(ValueError, match="unknown entity"):
        fr.features("planet", "x", h, orders[3])


@pytest.mark.parametrize("kind", [fr.CUSTOMER, fr.INSTRUMENT, fr.DEVICE, fr.IP])
def test_feature_rows_hold_exactly_the_view_fields(kind: str) -> None:
    at = order(1, T0, instrument_id="ins_1", device_id="dev_1", client_ip="10.0.0.1")
    view_name, join_key = fr.VIEWS[kind]
    view = FRAUD_VIEWS[view_name]
    row = fr.feature_row(fr.features(kind, "x", history(at), at))
    assert set(row) == {join_key, TIMESTAMP_FIELD} | {field.name for field in view.features}
    assert view.join_keys == [join_key]
    for field in view.features:
        expected = float if field.dtype.to_value_type().name == "DOUBLE" else int
        assert type(row[field.name]) is expected, field.name


# --- rules ---------------------------------------------------------------------------------------


def customer_rules_of(*orders: fr.Order, account: fr.Account | None = None) -> list[str]:
    h = history(*orders, account=account)
    return fr.customer_rules(fr.customer_features(h, orders[-1]))


def test_velocity_rule_per_minute_and_per_hour() -> None:
    minute = [order(i, T0 + i * 20_000) for i in range(3)]
    assert customer_rules_of(*minute[:2]) == []
    assert customer_rules_of(*minute) == [fr.VELOCITY]
    hour = [order(i, T0 + i * 10 * fr.MINUTE_MS) for i in range(5)]
    assert customer_rules_of(*hour[:4]) == []
    assert customer_rules_of(*hour) == [fr.VELOCITY]


def test_amount_outlier_needs_enough_history() -> None:
    usual = [order(i, T0 + i * 2 * fr.HOUR_MS, a) for i, a in enumerate((1000, 1200, 1000, 1200))]
    spike = order(9, T0 + 20 * fr.HOUR_MS, 9000)
    assert customer_rules_of(*usual, spike) == []  # four earlier orders are not enough
    fifth = order(5, T0 + 9 * fr.HOUR_MS, 1100)
    assert customer_rules_of(*usual, fifth, spike) == [fr.AMOUNT_OUTLIER]
    normal = order(9, T0 + 20 * fr.HOUR_MS, 1100 + 2 * 275)  # z = 2: fine
    assert customer_rules_of(*usual, fifth, normal) == []


def test_customer_rules_for_quantity_and_regions() -> None:
    home = fr.Account("eu", T0 - 90 * fr.DAY_MS)
    assert customer_rules_of(order(1, max_quantity=10), account=home) == [fr.BULK_QUANTITY]
    assert customer_rules_of(order(1, max_quantity=9), account=home) == []
    assert customer_rules_of(order(1, ship_region="us"), account=home) == [fr.SHIP_REGION_MISMATCH]
    assert customer_rules_of(order(1, ip_region="in"), account=home) == [fr.IP_REGION_MISMATCH]
    assert customer_rules_of(order(1, ship_region="eu", ip_region="eu"), account=home) == []


def test_device_and_instrument_sharing_rules() -> None:
    cards = [order(i, T0 + i, instrument_id=f"ins_{i}") for i in range(3)]
    h = history(*cards)
    assert fr.rules(fr.DEVICE, fr.device_features(h, "dev", cards[1])) == []
    assert fr.rules(fr.DEVICE, fr.device_features(h, "dev", cards[2])) == [
        fr.DEVICE_MANY_INSTRUMENTS
    ]
    accounts = [order(i, T0 + i, customer=f"cus_{i}") for i in range(3)]
    h = history(*accounts)
    assert fr.rules(fr.INSTRUMENT, fr.instrument_features(h, "ins", accounts[1])) == []
    assert fr.rules(fr.INSTRUMENT, fr.instrument_features(h, "ins", accounts[2])) == [
        fr.INSTRUMENT_MANY_CUSTOMERS
    ]
    assert fr.rules(fr.IP, fr.ip_features(h, "10.0.0.1", accounts[2])) == []


# --- alerts --------------------------------------------------------------------------------------


def test_verdict_grows_with_the_rules() -> None:
    assert fr.verdict([fr.VELOCITY]) == (0.5, "medium", "review")
    assert fr.verdict([fr.VELOCITY, fr.BULK_QUANTITY]) == (0.75, "high", "hold")
    assert fr.verdict(list(fr.RULES[:3])) == (0.875, "critical", "hold")
    assert fr.verdict(list(fr.RULES)) == (round(1 - 0.5**8, 4), "critical", "hold")
    with pytest.raises(ValueError):
        fr.verdict([])
    assert fr.ordered_rules([fr.IP_REGION_MISMATCH, fr.VELOCITY, fr.VELOCITY]) == [
        fr.VELOCITY,
        fr.IP_REGION_MISMATCH,
    ]


def test_stable_ids_are_time_ordered_uuid7_derived_from_the_checkout() -> None:
    a = fr.stable_uuid(T0, "x")
    assert a == fr.stable_uuid(T0, "x") and a != fr.stable_uuid(T0, "y")
    assert a.version == 7 and a.variant == uuid.RFC_4122 and uuid7_time_ms(a) == T0
    assert fr.stable_uuid(T0, "x") < fr.stable_uuid(T0 + 1, "a")
    prefix, value = parse_id(fr.alert_id(order(1)))
    assert prefix == fr.ALERT_ID_PREFIX
    assert value == fr.stable_uuid(T0, "alert:chk_1")


def test_alert_event_is_schema_valid_and_deterministic() -> None:
    cause = uuid.UUID("01900000-0000-7000-8000-000000000001")
    at = order(7, T0, customer="cus_7", event_id=str(cause))
    rules = [fr.SHIP_REGION_MISMATCH, fr.BULK_QUANTITY, fr.BULK_QUANTITY]
    envelope = fr.alert_event(at, rules)
    assert envelope is not None
    assert REGISTRY.encode(envelope) == REGISTRY.encode(fr.alert_event(at, rules[::-1]))
    decoded = REGISTRY.decode(REGISTRY.encode(envelope))
    assert decoded.event_id == fr.stable_uuid(T0, "event:chk_7")
    assert decoded.occurred_at == datetime.fromtimestamp(T0 / 1000, tz=UTC)
    assert (decoded.region, decoded.aggregate_id, decoded.causation_id) == (
        "eu",
        fr.alert_id(at),
        cause,
    )
    assert decoded.payload == {
        "alert_id": fr.alert_id(at),
        "subject_type": "order",
        "subject_id": "chk_7",
        "order_id": None,
        "payment_id": None,
        "customer_id": "cus_7",
        "score": 0.75,
        "severity": "high",
        "rules": [fr.BULK_QUANTITY, fr.SHIP_REGION_MISMATCH],
        "model_version": None,
        "action": "hold",
    }
    assert fr.alert_event(at, []) is None
    no_cause = fr.alert_event(replace(at, event_id="not-a-uuid"), rules)
    assert no_cause is not None and no_cause.causation_id is None


# --- the job's fan-out (PyFlink-free function of pipelines.fraud) --------------------------------


def test_fan_out_routes_events_to_their_entities() -> None:
    import json

    from pipelines.fraud import ACCOUNT, ORDER, fan_out

    payload = checkout_payload(device_id="dev_1", client_ip="10.0.0.1", instrument_id="ins_1")
    out = list(fan_out(("evt", "checkout.started", "eu", T0, json.dumps(payload))))
    assert [key for key, _ in out] == [
        "customer:cus_9",
        "instrument:ins_1",
        "device:dev_1",
        "ip:10.0.0.1",
    ]
    order_fields = fr.order_fields(fr.order_of(payload, T0, "eu", "evt"))
    assert {record for _, record in out} == {(ORDER, order_fields)}
    assert fr.Order(*order_fields) == fr.order_of(payload, T0, "eu", "evt")
    registered = json.dumps({"customer_id": "cus_9", "region": "eu", "country": "DE"})
    assert list(fan_out(("evt", "user.registered", "eu", T0, registered))) == [
        ("customer:cus_9", (ACCOUNT, fr.Account("eu", T0)))
    ]
    assert list(fan_out(("evt", "checkout.started", "eu", T0, "{not json"))) == []
    assert list(fan_out(("evt", "checkout.started", "eu", T0, json.dumps({"x": 1})))) == []


def test_a_batch_of_feature_rows_keeps_the_last_of_each_entity() -> None:
    from pipelines.fraud import latest_rows

    rows = [
        {"client_ip": "a", "orders_1h": 1},
        {"client_ip": "b", "orders_1h": 1},
        {"client_ip": "a", "orders_1h": 2},
    ]
    assert latest_rows("ip_fraud_signals", rows) == [
        {"client_ip": "a", "orders_1h": 2},
        {"client_ip": "b", "orders_1h": 1},
    ]
