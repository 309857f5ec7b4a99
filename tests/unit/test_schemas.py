"""Event contracts: every event round-trips; bad events fail with typed, precise errors."""

from __future__ import annotations

import copy
import inspect
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from schemas.common import Address, LineItem, Money
from schemas.envelope import Envelope
from schemas.examples import EXAMPLES, example_envelope
from schemas.orders import OrderPlaced
from schemas.registry import (
    REGISTRY,
    EventSpec,
    InvalidPayload,
    SchemaError,
    SchemaRegistry,
    UnknownEventType,
    dlq_topic,
    topic_for,
)
from schemas.reviews import ReviewPosted

REQUIRED_EVENTS = {
    "catalog": ("product", ["product.created", "product.updated", "product.price_changed"]),
    "inventory": (
        "stock",
        ["stock.adjusted", "stock.reserved", "stock.released", "stock.committed"],
    ),
    "carts": ("cart", ["cart.item_added", "cart.item_removed"]),
    "checkout": ("checkout", ["checkout.started", "checkout.completed", "checkout.failed"]),
    "orders": (
        "order",
        [
            "order.placed",
            "order.paid",
            "order.packed",
            "order.shipped",
            "order.delivered",
            "order.cancelled",
            "order.returned",
        ],
    ),
    "payments": (
        "payment",
        [
            "payment.authorized",
            "payment.captured",
            "payment.failed",
            "payment.refunded",
            "payment.voided",
        ],
    ),
    "shipments": ("shipment", ["shipment.created", "shipment.status_changed"]),
    "returns": ("return", ["return.requested", "return.received", "refund.issued"]),
    "reviews": ("review", ["review.posted"]),
    "customers": ("customer", ["user.registered", "customer.address_added"]),
    "behaviour": (
        "session",
        ["product.viewed", "search.performed", "recommendation.served", "recommendation.clicked"],
    ),
    "fraud": ("fraud_alert", ["fraud.alert_raised"]),
    "sellers": ("seller", ["seller.applied", "seller.kyc_changed"]),
}


def example(event_type: str) -> dict[str, Any]:
    """A deep copy of the example payload, safe to mutate."""
    return copy.deepcopy(dict(EXAMPLES[event_type]))


# -- coverage ---------------------------------------------------------------------------


def test_every_registered_event_has_an_example_and_vice_versa() -> None:
    assert set(EXAMPLES) == set(REGISTRY.event_types())


@pytest.mark.parametrize("domain", sorted(REQUIRED_EVENTS))
def test_required_events_are_registered_in_their_domain(domain: str) -> None:
    aggregate_type, event_types = REQUIRED_EVENTS[domain]
    for event_type in event_types:
        spec = REGISTRY.spec(event_type)
        assert (spec.domain, spec.aggregate_type, spec.version) == (domain, aggregate_type, 1)


def test_promotion_events_use_promotion_and_deal_aggregates() -> None:
    assert REGISTRY.spec("promotion.applied").aggregate_type == "promotion"
    assert REGISTRY.spec("deal.started").aggregate_type == "deal"
    assert REGISTRY.spec("deal.ended").aggregate_type == "deal"
    assert {REGISTRY.spec(t).domain for t in ("promotion.applied", "deal.started")} == {
        "promotions"
    }


def test_domains_are_sorted_and_unique() -> None:
    domains = REGISTRY.domains()
    assert domains == sorted(set(domains))
    assert set(domains) == set(REQUIRED_EVENTS) | {"promotions"}


def test_payload_structs_are_frozen_kw_only_and_untagged() -> None:
    for spec in REGISTRY.specs():
        config = spec.payload_type.__struct_config__
        assert config.frozen, spec.event_type
        parameters = inspect.signature(spec.payload_type).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters), spec.event_type
        assert config.tag is None, spec.event_type


def test_no_float_fields_except_the_fraud_score() -> None:
    # Money is integer minor units everywhere; the only legitimate float is a model score.
    floats = {
        spec.event_type
        for spec in REGISTRY.specs()
        if '"type": "number"' in json.dumps(msgspec.json.schema(spec.payload_type))
    }
    assert floats == {"fraud.alert_raised"}


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_event_round_trips_encode_decode(event_type: str) -> None:
    envelope = REGISTRY.new_event(
        event_type, EXAMPLES[event_type], region="eu", correlation_id=uuid.uuid4()
    )
    data = REGISTRY.encode(envelope)
    decoded = REGISTRY.decode(data)
    assert decoded == envelope
    typed = REGISTRY.validate(decoded)
    spec = REGISTRY.spec(event_type)
    assert isinstance(typed, spec.payload_type)
    # The typed payload re-serialises to exactly the wire payload.
    assert msgspec.to_builtins(typed) == decoded.payload
    assert decoded.aggregate_type == spec.aggregate_type
    assert decoded.event_id.version == 7


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_struct_payload_gives_the_same_envelope_payload_as_a_mapping(event_type: str) -> None:
    spec = REGISTRY.spec(event_type)
    typed = msgspec.convert(EXAMPLES[event_type], spec.payload_type)
    from_struct = REGISTRY.new_event(event_type, typed, region="us")
    from_mapping = REGISTRY.new_event(event_type, EXAMPLES[event_type], region="us")
    assert from_struct.payload == from_mapping.payload


def test_wire_format_is_plain_json_with_the_envelope_fields() -> None:
    envelope = example_envelope("order.placed")
    wire = json.loads(REGISTRY.encode(envelope))
    assert set(wire) == {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "aggregate_type",
        "aggregate_id",
        "region",
        "correlation_id",
        "causation_id",
        "payload",
    }
    assert wire["event_type"] == "order.placed"
    assert wire["aggregate_id"] == "ord_1"
    assert wire["occurred_at"].endswith("Z")
    assert wire["payload"]["lines"][0]["unit_price"] == {"amount_minor": 1999, "currency": "EUR"}


def test_new_event_fills_defaults_and_derives_the_aggregate_id() -> None:
    before = datetime.now(UTC)
    envelope = example_envelope("stock.reserved")
    assert envelope.aggregate_id == "sku_tshirt_m_red"  # inventory is keyed by SKU
    assert envelope.aggregate_type == "stock"
    assert envelope.schema_version == 1
    assert envelope.occurred_at.tzinfo is UTC
    assert before <= envelope.occurred_at <= datetime.now(UTC)
    assert envelope.correlation_id is None and envelope.causation_id is None


def test_new_event_keeps_explicit_metadata() -> None:
    event_id, correlation, causation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    envelope = REGISTRY.new_event(
        "order.paid",
        EXAMPLES["order.paid"],
        aggregate_id="ord_1",
        region="in",
        event_id=event_id,
        correlation_id=correlation,
        causation_id=causation,
        occurred_at=at,
    )
    assert (envelope.event_id, envelope.correlation_id, envelope.causation_id) == (
        event_id,
        correlation,
        causation,
    )
    assert envelope.occurred_at == at and envelope.occurred_at.tzinfo is UTC  # normalised
    assert envelope.region == "in"


def test_payload_as_is_statically_typed() -> None:
    envelope = example_envelope("order.placed")
    order = REGISTRY.payload_as(envelope, OrderPlaced)
    assert order.lines[0].unit_price == Money(amount_minor=1999, currency="EUR")
    assert order.shipping_address.country == "DE"
    with pytest.raises(InvalidPayload, match="not ReviewPosted"):
        REGISTRY.payload_as(envelope, ReviewPosted)


# -- invalid payloads -------------------------------------------------------------------


def test_wrong_field_type_names_event_and_path() -> None:
    payload = example("order.placed")
    payload["lines"][0]["quantity"] = "2"
    with pytest.raises(InvalidPayload) as info:
        REGISTRY.new_event("order.placed", payload, region="eu")
    assert str(info.value) == (
        "order.placed v1: Expected `int`, got `str` - at `$.lines[0].quantity`"
    )
    assert info.value.event_type == "order.placed" and info.value.version == 1
    assert isinstance(info.value, SchemaError)


@pytest.mark.parametrize(
    ("event_type", "mutate", "fragment"),
    [
        ("order.placed", lambda p: p["lines"][0].update(quantity=0), "$.lines[0].quantity"),
        ("order.placed", lambda p: p["totals"]["tax"].update(currency="eur"), "$.totals.tax"),
        ("order.placed", lambda p: p.pop("customer_id"), "customer_id"),
        ("order.placed", lambda p: p.update(order_id=""), "$.order_id"),
        ("order.placed", lambda p: p.update(lines=[]), "$.lines"),
        ("cart.item_added", lambda p: p["unit_price"].update(amount_minor=19.99), "amount_minor"),
        ("cart.item_added", lambda p: p["unit_price"].update(amount_minor=-1), "amount_minor"),
        ("review.posted", lambda p: p.update(rating=6), "$.rating"),
        ("payment.failed", lambda p: p.update(stage="settlement"), "$.stage"),
        ("stock.reserved", lambda p: p.update(expires_at="2025-03-01T12:15:00"), "expires_at"),
        ("search.performed", lambda p: p.update(result_count=-3), "$.result_count"),
        ("fraud.alert_raised", lambda p: p.update(score=1.5), "$.score"),
        ("user.registered", lambda p: p.update(country="Germany"), "$.country"),
    ],
)
def test_invalid_payloads_are_rejected_naming_the_field(
    event_type: str, mutate: Any, fragment: str
) -> None:
    payload = example(event_type)
    mutate(payload)
    with pytest.raises(InvalidPayload, match=rf"^{event_type} v1: ") as info:
        REGISTRY.new_event(event_type, payload, region="eu")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("event_type", "mutate", "message"),
    [
        (
            "order.placed",
            lambda p: p["totals"]["grand_total"].update(amount_minor=1),
            "grand_total",
        ),
        (
            "order.placed",
            lambda p: p["fulfilment_groups"][1].update(line_ids=["lin_1"]),
            "exactly one fulfilment group",
        ),
        ("order.placed", lambda p: p["lines"][1].pop("warehouse_id"), "warehouse_id"),
        (
            "product.price_changed",
            lambda p: p["new_price"].update(currency="USD"),
            "mixed currencies",
        ),
        ("deal.started", lambda p: p.update(ends_at=p["starts_at"]), "ends_at"),
        ("stock.adjusted", lambda p: p.update(delta=0), "non-zero"),
    ],
)
def test_cross_field_invariants_are_enforced(event_type: str, mutate: Any, message: str) -> None:
    payload = example(event_type)
    mutate(payload)
    with pytest.raises(InvalidPayload, match=message):
        REGISTRY.new_event(event_type, payload, region="eu")


def test_constructed_struct_is_validated_against_meta_constraints() -> None:
    # msgspec does not check Meta constraints in __init__; new_event must.
    bad = Money(amount_minor=100, currency="euro")
    line = LineItem(
        line_id="l1", sku="s", product_id="p", seller_id="x", quantity=1, unit_price=bad
    )
    typed = msgspec.convert(
        example("checkout.started"), REGISTRY.spec("checkout.started").payload_type
    )
    payload = msgspec.structs.replace(typed, lines=[line], subtotal=bad)
    with pytest.raises(InvalidPayload, match=r"\$\.lines\[0\]\.unit_price\.currency"):
        REGISTRY.new_event("checkout.started", payload, region="eu")


def test_struct_of_the_wrong_type_is_rejected() -> None:
    review = msgspec.convert(EXAMPLES["review.posted"], ReviewPosted)
    with pytest.raises(InvalidPayload, match="expected payload OrderPlaced, got ReviewPosted"):
        REGISTRY.new_event("order.placed", review, region="eu")


def test_aggregate_id_must_match_the_payload() -> None:
    with pytest.raises(InvalidPayload, match="aggregate_id 'ord_2' != payload order_id 'ord_1'"):
        REGISTRY.new_event("order.paid", EXAMPLES["order.paid"], aggregate_id="ord_2", region="eu")


def test_unknown_fields_are_tolerated_for_forward_compatibility() -> None:
    # A newer producer may add optional fields; older consumers must still accept them.
    payload = {**example("order.paid"), "added_in_a_later_release": True}
    envelope = REGISTRY.new_event("order.paid", payload, region="eu")
    assert REGISTRY.decode(REGISTRY.encode(envelope)).event_type == "order.paid"


# -- unknown types ----------------------------------------------------------------------


def test_unknown_event_type_suggests_close_matches() -> None:
    with pytest.raises(UnknownEventType) as info:
        REGISTRY.new_event("order.placd", example("order.placed"), region="eu")
    assert "'order.placd'" in str(info.value)
    assert "order.placed" in info.value.suggestions
    assert "did you mean" in str(info.value)
    assert isinstance(info.value, SchemaError)


def test_unknown_event_type_without_close_matches() -> None:
    with pytest.raises(UnknownEventType, match=r"unknown event type 'zzz\.qqq'$"):
        REGISTRY.spec("zzz.qqq")


def test_unknown_version_is_rejected() -> None:
    envelope = example_envelope("order.paid")
    future = msgspec.structs.replace(envelope, schema_version=9)
    with pytest.raises(
        UnknownEventType, match=r"order.paid v9 is not registered \(known versions: 1\)"
    ):
        REGISTRY.validate(future)


def test_decode_of_unknown_type_raises_unknown_event_type() -> None:
    wire = json.loads(REGISTRY.encode(example_envelope("order.paid")))
    wire["event_type"] = "order.payed"
    with pytest.raises(UnknownEventType, match=r"did you mean .*'order\.paid'"):
        REGISTRY.decode(json.dumps(wire).encode())


# -- envelope ---------------------------------------------------------------------------


def test_naive_datetime_is_rejected_on_construction() -> None:
    with pytest.raises(InvalidPayload, match="timezone-aware"):
        REGISTRY.new_event(
            "order.paid", EXAMPLES["order.paid"], region="eu", occurred_at=datetime(2025, 1, 1)
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Envelope(
            event_id=uuid.uuid4(),
            event_type="order.paid",
            schema_version=1,
            occurred_at=datetime(2025, 1, 1),
            aggregate_type="order",
            aggregate_id="ord_1",
            region="eu",
            payload={},
        )


def test_naive_datetime_is_rejected_on_decode() -> None:
    wire = json.loads(REGISTRY.encode(example_envelope("order.paid")))
    wire["occurred_at"] = "2025-01-01T00:00:00"
    with pytest.raises(InvalidPayload, match=r"invalid envelope: .*timezone.*\$\.occurred_at"):
        REGISTRY.decode(json.dumps(wire).encode())


def test_naive_datetime_in_payload_is_rejected() -> None:
    payload = example("order.delivered")
    payload["delivered_at"] = datetime(2025, 3, 3, 14, 0)
    with pytest.raises(InvalidPayload, match=r"\$\.delivered_at"):
        REGISTRY.new_event("order.delivered", payload, region="eu")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "malformed event JSON"),
        (b"[]", "invalid envelope: Expected `object`, got `array`"),
        (b'{"event_type": "order.paid"}', "invalid envelope: Object missing required field"),
    ],
)
def test_malformed_input_raises_invalid_payload(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        REGISTRY.decode(data)


def test_decode_rejects_a_bad_payload_with_its_path() -> None:
    wire = json.loads(REGISTRY.encode(example_envelope("order.placed")))
    wire["payload"]["lines"][0]["quantity"] = "two"
    with pytest.raises(
        InvalidPayload,
        match=r"order.placed v1: Expected `int`, got `str` - at `\$.lines\[0\].quantity`",
    ):
        REGISTRY.decode(json.dumps(wire).encode())


def test_encode_validates_first() -> None:
    envelope = example_envelope("order.paid")
    broken = msgspec.structs.replace(envelope, payload={**envelope.payload, "amount": "lots"})
    with pytest.raises(InvalidPayload, match=r"\$\.amount"):
        REGISTRY.encode(broken)


def test_encode_rejects_a_mismatched_aggregate_type() -> None:
    envelope = msgspec.structs.replace(example_envelope("order.paid"), aggregate_type="payment")
    with pytest.raises(InvalidPayload, match="aggregate_type must be 'order'"):
        REGISTRY.encode(envelope)


@pytest.mark.parametrize("region", ["EU", "", "e", "eu west"])
def test_region_must_be_a_lowercase_code(region: str) -> None:
    with pytest.raises(InvalidPayload, match="region"):
        REGISTRY.new_event("order.paid", EXAMPLES["order.paid"], region=region)


def test_envelope_json_schema_requires_the_metadata() -> None:
    schema = msgspec.json.schema(Envelope)
    definition = schema["$defs"]["Envelope"]
    assert set(definition["required"]) == {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "aggregate_type",
        "aggregate_id",
        "region",
        "payload",
    }


# -- registry mechanics -----------------------------------------------------------------


class _Thing(msgspec.Struct, frozen=True, kw_only=True):
    thing_id: str
    size: int = 1


class _ThingV2(msgspec.Struct, frozen=True, kw_only=True):
    thing_id: str
    size: int
    colour: str


def test_registry_keeps_versions_side_by_side() -> None:
    registry = SchemaRegistry()
    v1 = EventSpec("thing.made", 1, "things", "thing", _Thing, "thing_id")
    v2 = EventSpec("thing.made", 2, "things", "thing", _ThingV2, "thing_id")
    registry.register(v2)
    registry.register(v1)
    registry.register(v1)  # idempotent
    assert registry.spec("thing.made") is v2
    assert registry.spec("thing.made", 1) is v1
    assert registry.specs() == [v1, v2]
    old = registry.new_event("thing.made", {"thing_id": "t1"}, region="eu", version=1)
    assert registry.validate(old) == _Thing(thing_id="t1")
    new = registry.new_event(
        "thing.made", {"thing_id": "t1", "size": 2, "colour": "red"}, region="eu"
    )
    assert new.schema_version == 2
    assert isinstance(registry.validate(registry.decode(registry.encode(new))), _ThingV2)


def test_registering_a_conflicting_spec_fails() -> None:
    registry = SchemaRegistry()
    registry.register(EventSpec("thing.made", 1, "things", "thing", _Thing))
    with pytest.raises(SchemaError, match="already registered"):
        registry.register(EventSpec("thing.made", 1, "things", "thing", _ThingV2))


def test_aggregate_id_is_required_when_the_spec_cannot_derive_it() -> None:
    registry = SchemaRegistry()
    registry.register(EventSpec("thing.made", 1, "things", "thing", _Thing))
    with pytest.raises(InvalidPayload, match="aggregate_id is required"):
        registry.new_event("thing.made", {"thing_id": "t1"}, region="eu")
    envelope = registry.new_event("thing.made", {"thing_id": "t1"}, aggregate_id="x", region="eu")
    assert envelope.aggregate_id == "x"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"event_type": "ThingMade"}, ValueError),
        ({"version": 0}, ValueError),
        ({"domain": "Things"}, ValueError),
        ({"aggregate_id_field": "nope"}, ValueError),
        ({"payload_type": dict}, TypeError),
    ],
)
def test_event_spec_validates_itself(kwargs: dict[str, Any], error: type[Exception]) -> None:
    fields: dict[str, Any] = {
        "event_type": "thing.made",
        "version": 1,
        "domain": "things",
        "aggregate_type": "thing",
        "payload_type": _Thing,
        **kwargs,
    }
    with pytest.raises(error):
        EventSpec(**fields)


def test_payload_must_be_a_struct_or_mapping() -> None:
    with pytest.raises(InvalidPayload, match="must be a OrderPaid or a mapping"):
        REGISTRY.new_event("order.paid", [1, 2], region="eu")  # type: ignore[arg-type]


# -- topics -----------------------------------------------------------------------------


def test_topic_naming() -> None:
    assert topic_for("orders", "eu") == "eu.orders.v1"
    assert topic_for("behaviour", "in", version=2) == "in.behaviour.v2"
    assert dlq_topic("eu.orders.v1") == "eu.orders.v1.dlq"
    assert REGISTRY.topic(example_envelope("stock.reserved", region="us")) == "us.inventory.v1"
    assert REGISTRY.topic(example_envelope("deal.started")) == "eu.promotions.v1"


@pytest.mark.parametrize(("domain", "region"), [("Orders", "eu"), ("orders", "EU"), ("", "eu")])
def test_topic_for_rejects_bad_names(domain: str, region: str) -> None:
    with pytest.raises(ValueError):
        topic_for(domain, region)


def test_address_carries_no_street_level_pii() -> None:
    fields = {field.name for field in msgspec.structs.fields(Address)}
    assert not fields & {"line1", "line2", "street", "name", "phone", "email"}
