"""Kafka records → one Arrow table per analytics table: the wide ``events`` rows plus the typed
rows of each event's domain (pure: no store, no Kafka here).

``decode``  each record's envelope with msgspec (``Wire``: the payload stays raw JSON bytes),
            then its payload into the struct of its table, which names only the fields the
            tables use. Event ids and timestamps are checked a whole column at a time with
            Arrow. A record that fails any of it is rejected alone, with the reason.
``tables``  the columns of every table, built from those structs and Arrow arrays (no row
            dicts, no JSON round trip): what the stores insert as Arrow.

Payloads are read as the registry's JSON data (producers validated them, the loader does not
re-validate): a field a payload lacks becomes NULL (or its schema default); a payload that
lacks a field its typed table needs (``cart_id`` of a cart event...) rejects its record.
"""

from __future__ import annotations

import functools
import gc
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, NamedTuple, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.analytics.schema import arrow_schema

_TS = pa.timestamp("ms", tz="UTC")
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID_RE = re.compile(_UUID)

# Range checks in the structs: a value the column's type cannot hold rejects its record
# instead of failing the whole batch's Arrow conversion.
U16 = Annotated[int, msgspec.Meta(ge=1, le=2**16 - 1)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Source(NamedTuple):
    """Where an event was read: its topic partition and offset (a tuple: one per record, and
    a frozen dataclass costs ten times as much to build)."""

    topic: str
    partition: int
    offset: int


@functools.cache
def domain_of(topic: str) -> str:
    """The domain of a ``<region>.<domain>.v<n>`` topic (or the topic itself)."""
    parts = topic.split(".")
    return parts[1] if len(parts) == 3 else topic


class Wire(msgspec.Struct, kw_only=True, gc=False):
    """The envelope as the loader reads it (``schemas.envelope.Envelope``'s fields and rules;
    ids and the timestamp are checked per column afterwards)."""

    event_id: str
    event_type: Annotated[str, msgspec.Meta(min_length=1)]
    schema_version: U16
    occurred_at: str
    aggregate_type: Annotated[str, msgspec.Meta(min_length=1)]
    aggregate_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    region: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,15}$")]
    correlation_id: str | None = None
    causation_id: str | None = None
    payload: msgspec.Raw


# --- payload structs: one per typed table; every one carries the wide row's ids ---------


class Money(msgspec.Struct, kw_only=True, gc=False):
    """An optional amount (``{"amount_minor", "currency"}``)."""

    amount_minor: I64 = 0
    currency: str | None = None


class Amount(msgspec.Struct, kw_only=True, gc=False):
    """An amount whose minor units are required."""

    amount_minor: I64
    currency: str | None = None


class Price(msgspec.Struct, kw_only=True, gc=False):
    """An amount whose minor units and currency are required."""

    amount_minor: I64
    currency: str


class Ids(msgspec.Struct, kw_only=True, gc=False):
    """The ids the wide ``events`` row copies out of any payload."""

    customer_id: str | None = None
    session_id: str | None = None
    order_id: str | None = None
    product_id: str | None = None


class Behaviour(Ids, kw_only=True, gc=False):
    """product.viewed, search.performed, recommendation.served / .clicked."""

    session_id: str
    sku: str | None = None
    source: str | None = None
    search_id: str | None = None
    recommendation_id: str | None = None
    placement: str | None = None
    model: str | None = None
    model_version: str | None = None
    position: U32 | None = None
    product_ids: list[str] | None = None
    top_product_ids: list[str] | None = None
    query: str | None = None
    result_count: U32 | None = None
    price: Money | None = None
    channel: str = "web"


class Cart(Ids, kw_only=True, gc=False):
    """cart.*"""

    cart_id: str
    sku: str
    product_id: str
    seller_id: str | None = None
    quantity: U32
    quantity_in_cart: U32 = 0
    unit_price: Money | None = None
    reason: str | None = None
    channel: str = "web"


class Checkout(Ids, kw_only=True, gc=False):
    """checkout.*"""

    checkout_id: str
    customer_id: str
    cart_id: str | None = None
    payment_id: str | None = None
    amount: Money | None = None
    subtotal: Money | None = None
    channel: str | None = None
    step: str | None = None
    code: str | None = None
    device_id: str | None = None
    ip_region: str | None = None
    lines: list[msgspec.Raw] | None = None  # only counted


class Totals(msgspec.Struct, kw_only=True, gc=False):
    """An order's totals."""

    subtotal: Amount
    discount: Amount
    shipping: Amount
    tax: Amount
    grand_total: Price


class Line(msgspec.Struct, kw_only=True, gc=False):
    """One order line."""

    line_id: str
    sku: str
    product_id: str
    seller_id: str
    warehouse_id: str | None = None
    quantity: U32
    unit_price: Price
    discount: Money | None = None


class Address(msgspec.Struct, kw_only=True, gc=False):
    """The part of a shipping address the tables keep."""

    country: str = ""


class OrderPlaced(Ids, kw_only=True, gc=False):
    """order.placed: one ``orders`` row and one ``order_lines`` row per line."""

    order_id: str
    customer_id: str
    checkout_id: str | None = None
    totals: Totals
    lines: list[Line]
    payment_method: str = ""
    channel: str = "web"
    prime: bool = False
    shipping_address: Address | None = None


class OrderEvent(Ids, kw_only=True, gc=False):
    """order.* after placement."""

    order_id: str
    customer_id: str
    reason: str | None = None
    cancelled_by: str | None = None
    line_ids: list[str] | None = None
    amount: Money | None = None
    refund_amount: Money | None = None
    fulfilment_group_id: str | None = None
    seller_id: str | None = None
    warehouse_id: str | None = None
    carrier: str | None = None


class Payment(Ids, kw_only=True, gc=False):
    """payment.*"""

    payment_id: str
    order_id: str
    customer_id: str
    amount: Money | None = None
    method: str | None = None
    gateway: str | None = None
    stage: str | None = None
    error_code: str | None = None
    retryable: bool | None = None
    refund_id: str | None = None
    reason: str | None = None


class Customer(Ids, kw_only=True, gc=False):
    """user.registered"""

    customer_id: str
    region: str | None = None
    country: str = ""
    locale: str = "en"
    signup_channel: str = "web"
    prime: bool = False
    marketing_opt_in: bool = False


class Product(Ids, kw_only=True, gc=False):
    """product.created / product.updated (catalog snapshots)."""

    product_id: str
    product_version: U32
    seller_id: str
    title: str
    category_id: str
    category_path: list[str] | None = None
    brand: str | None = None
    status: str = "active"
    price: Money | None = None


class Fraud(Ids, kw_only=True, gc=False):
    """fraud.alert_raised"""

    alert_id: str
    subject_type: str
    subject_id: str
    payment_id: str | None = None
    score: float
    severity: str
    rules: list[str] | None = None
    model_version: str | None = None
    action: str = "review"


_BEHAVIOUR = {
    "product.viewed",
    "search.performed",
    "recommendation.served",
    "recommendation.clicked",
}
_PREFIXES = {
    "cart.": "cart_events",
    "checkout.": "checkouts",
    "order.": "order_events",
    "payment.": "payments",
}


@functools.cache
def table_of(event_type: str) -> str | None:
    """The typed table of an event type (``orders`` for order.placed), or None."""
    if event_type in _BEHAVIOUR:
        return "behaviour"
    if event_type == "order.placed":
        return "orders"
    if event_type == "user.registered":
        return "customers"
    if event_type in ("product.created", "product.updated"):
        return "products"
    if event_type == "fraud.alert_raised":
        return "fraud_alerts"
    for prefix, table in _PREFIXES.items():
        if event_type.startswith(prefix):
            return table
    return None


_PAYLOADS: dict[str | None, type[Ids]] = {
    None: Ids,
    "behaviour": Behaviour,
    "cart_events": Cart,
    "checkouts": Checkout,
    "orders": OrderPlaced,
    "order_events": OrderEvent,
    "payments": Payment,
    "customers": Customer,
    "products": Product,
    "fraud_alerts": Fraud,
}
_WIRE = msgspec.json.Decoder(Wire)
_DECODERS = {table: msgspec.json.Decoder(kind) for table, kind in _PAYLOADS.items()}


# --- decoding ------------------------------------------------------------------------------


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: a batch allocates hundreds of thousands of objects with
    no cycles, and each full collection would walk them all (about a third of the build time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Batch:
    """A batch's decoded events, in arrival order (rejected records left out, with why)."""

    wires: list[Wire] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)  # the ``_PAYLOADS`` struct of each
    sources: list[Source] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)  # canonical (lower-case, dashed)
    correlation_ids: list[str | None] = field(default_factory=list)
    causation_ids: list[str | None] = field(default_factory=list)
    occurred: pa.Array = field(default_factory=lambda: pa.array([], _TS))
    rejected: list[tuple[Source, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.wires)

    def take(self, keep: Sequence[int]) -> Batch:
        """The events at the increasing positions ``keep`` (rejections carried over)."""
        if len(keep) == len(self.wires):
            return self
        return Batch(
            [self.wires[i] for i in keep],
            [self.payloads[i] for i in keep],
            [self.sources[i] for i in keep],
            [self.event_ids[i] for i in keep],
            [self.correlation_ids[i] for i in keep],
            [self.causation_ids[i] for i in keep],
            self.occurred.take(pa.array(keep, pa.int64())),
            self.rejected,
        )

    def days(self) -> list[str]:
        """The UTC days (ISO) the events occurred on."""
        return sorted(d.isoformat() for d in pc.unique(self.occurred.cast(pa.date32())).to_pylist())


def _canonical_uuids(values: list[str | None], bad: dict[int, str], what: str) -> list[str | None]:
    """``values`` as canonical UUID text (as ``str(uuid.UUID(v))``); others into ``bad``."""
    matches = pc.match_substring_regex(pa.array(values, pa.string()), _UUID)
    if not pc.any(pc.invert(matches)).as_py():  # None (all NULL) or False: all canonical
        return values
    out = list(values)
    for i, value in enumerate(values):  # rare: upper case, no dashes... or not a UUID
        if value is None or _UUID_RE.match(value):
            continue
        try:
            out[i] = str(uuid.UUID(value))
        except ValueError:
            bad.setdefault(i, f"{what} is not a UUID: {value[:64]!r}")
    return out


def _texts(raws: list[msgspec.Raw]) -> pa.Array:
    """Raw JSON values as one Arrow string array, built from their bytes in one copy (valid
    UTF-8: msgspec checked it while decoding)."""
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, raws), dtype=np.int64, count=len(raws)), out=offsets[1:])
    data = pa.py_buffer(b"".join(raws))
    return pa.LargeStringArray.from_buffers(len(raws), pa.py_buffer(offsets), data).cast(
        pa.string()
    )


def _timestamps(values: list[str]) -> pa.Array:
    """RFC 3339 texts with a zone → UTC milliseconds (Arrow refuses a text without a zone)."""
    micros = pa.array(values, pa.string()).cast(pa.timestamp("us", tz="UTC"))
    return micros.cast(_TS, safe=False)  # DateTime64(3): sub-millisecond digits dropped


def decode(records: Iterable[tuple[bytes, Source]]) -> Batch:
    """Decode and check a batch of Kafka record values; failures go to ``Batch.rejected``."""
    with no_cycle_collection():
        return _decode(records)


def _decode(records: Iterable[tuple[bytes, Source]]) -> Batch:
    batch = Batch()
    wires, payloads, sources, rejected = batch.wires, batch.payloads, batch.sources, batch.rejected
    for value, source in records:
        try:
            wire = _WIRE.decode(value)
            payload = _DECODERS[table_of(wire.event_type)].decode(wire.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            rejected.append((source, str(error)))
            continue
        wires.append(wire)
        payloads.append(payload)
        sources.append(source)
    bad: dict[int, str] = {}
    ids = _canonical_uuids([w.event_id for w in wires], bad, "event_id")
    correlations = _canonical_uuids([w.correlation_id for w in wires], bad, "correlation_id")
    causations = _canonical_uuids([w.causation_id for w in wires], bad, "causation_id")
    stamps = [w.occurred_at for w in wires]
    occurred: pa.Array | None
    try:
        occurred = _timestamps(stamps)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        occurred = None
        for i, stamp in enumerate(stamps):
            try:
                _timestamps([stamp])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.setdefault(i, f"occurred_at is not a timestamp with a zone: {stamp[:64]!r}")
    keep = [i for i in range(len(wires)) if i not in bad] if bad else range(len(wires))
    for i, reason in sorted(bad.items()):
        rejected.append((sources[i], reason))
    if occurred is None:
        occurred = _timestamps([stamps[i] for i in keep])
    elif bad:
        occurred = occurred.take(pa.array(keep, pa.int64()))
    batch.occurred = occurred
    # event_id is a required field: never None here
    batch.event_ids = cast("list[str]", [ids[i] for i in keep] if bad else ids)
    batch.correlation_ids = [correlations[i] for i in keep] if bad else correlations
    batch.causation_ids = [causations[i] for i in keep] if bad else causations
    if bad:
        batch.wires = [wires[i] for i in keep]
        batch.payloads = [payloads[i] for i in keep]
        batch.sources = [sources[i] for i in keep]
    return batch


# --- columns -------------------------------------------------------------------------------

#: What a typed builder returns per table: its own columns (lists or Arrow arrays) and, when a
#: table gets other than one row per event (order lines), the event of each row.
Columns = dict[str, Any]
Built = dict[str, tuple[Columns, list[int] | None]]


def _money(values: Iterable[Money | Amount | None]) -> tuple[list[int | None], list[str | None]]:
    amounts: list[int | None] = []
    currencies: list[str | None] = []
    for m in values:
        amounts.append(None if m is None else m.amount_minor)
        currencies.append(None if m is None else m.currency)
    return amounts, currencies


def _get(rows: list[Any], name: str) -> list[Any]:
    return list(map(attrgetter(name), rows))  # C loop: a third of a comprehension's time


def _pick(rows: list[Any], names: str) -> Columns:
    """The columns ``names`` (space-separated) straight from the structs' attributes."""
    return {name: list(map(attrgetter(name), rows)) for name in names.split()}


def _behaviour(ps: list[Behaviour], ws: list[Wire]) -> Built:
    prices, currencies = _money(p.price for p in ps)
    cols = _pick(
        ps,
        "session_id customer_id product_id sku source search_id recommendation_id "
        "placement model model_version position query result_count channel",
    )
    cols["product_ids"] = [p.product_ids or p.top_product_ids or [] for p in ps]
    cols["price_minor"], cols["currency"] = prices, currencies
    return {"behaviour": (cols, None)}


def _cart(ps: list[Cart], ws: list[Wire]) -> Built:
    prices, currencies = _money(p.unit_price for p in ps)
    cols = _pick(
        ps, "cart_id customer_id sku product_id seller_id quantity quantity_in_cart reason channel"
    )
    cols["session_id"] = [p.session_id or "" for p in ps]
    cols["unit_price_minor"], cols["currency"] = prices, currencies
    return {"cart_events": (cols, None)}


def _checkout(ps: list[Checkout], ws: list[Wire]) -> Built:
    amounts, currencies = _money(p.amount or p.subtotal for p in ps)
    cols = _pick(
        ps,
        "checkout_id cart_id customer_id session_id order_id payment_id channel step code "
        "device_id ip_region",
    )
    cols["amount_minor"], cols["currency"] = amounts, currencies
    cols["line_count"] = [len(p.lines or ()) for p in ps]
    return {"checkouts": (cols, None)}


def _orders(ps: list[OrderPlaced], ws: list[Wire]) -> Built:
    totals = [p.totals for p in ps]
    orders = _pick(ps, "order_id customer_id checkout_id payment_method channel prime")
    orders["currency"] = [t.grand_total.currency for t in totals]
    for part in ("subtotal", "discount", "shipping", "tax", "grand_total"):
        orders[f"{part}_minor"] = [getattr(t, part).amount_minor for t in totals]
    orders["line_count"] = [len(p.lines) for p in ps]
    orders["units"] = [sum(line.quantity for line in p.lines) for p in ps]
    orders["ship_country"] = [p.shipping_address.country if p.shipping_address else "" for p in ps]
    rows: list[int] = []
    lines: list[Line] = []
    for at, p in enumerate(ps):
        rows.extend([at] * len(p.lines))
        lines.extend(p.lines)
    line_cols = _pick(lines, "line_id sku product_id seller_id warehouse_id quantity")
    line_cols["order_id"] = [ps[r].order_id for r in rows]
    line_cols["customer_id"] = [ps[r].customer_id for r in rows]
    line_cols["unit_price_minor"] = [line.unit_price.amount_minor for line in lines]
    line_cols["currency"] = [line.unit_price.currency for line in lines]
    discounts = [line.discount.amount_minor if line.discount else 0 for line in lines]
    line_cols["discount_minor"] = discounts
    line_cols["line_total_minor"] = [
        line.quantity * line.unit_price.amount_minor - discount
        for line, discount in zip(lines, discounts, strict=True)
    ]
    return {"orders": (orders, None), "order_lines": (line_cols, rows)}


def _order_event(ps: list[OrderEvent], ws: list[Wire]) -> Built:
    amounts, currencies = _money(p.amount or p.refund_amount for p in ps)
    cols = _pick(
        ps,
        "order_id customer_id reason cancelled_by fulfilment_group_id seller_id "
        "warehouse_id carrier",
    )
    cols["line_ids"] = [p.line_ids or [] for p in ps]
    cols["amount_minor"], cols["currency"] = amounts, currencies
    return {"order_events": (cols, None)}


def _payment(ps: list[Payment], ws: list[Wire]) -> Built:
    amounts, currencies = _money(p.amount for p in ps)
    cols = _pick(
        ps,
        "payment_id order_id customer_id method gateway stage error_code retryable "
        "refund_id reason",
    )
    cols["amount_minor"] = [a or 0 for a in amounts]
    cols["currency"] = [c or "" for c in currencies]
    return {"payments": (cols, None)}


def _customer(ps: list[Customer], ws: list[Wire]) -> Built:
    cols = _pick(ps, "customer_id country locale signup_channel prime marketing_opt_in")
    cols["region"] = [
        p.region if p.region is not None else w.region for p, w in zip(ps, ws, strict=True)
    ]
    return {"customers": (cols, None)}


def _product(ps: list[Product], ws: list[Wire]) -> Built:
    prices, currencies = _money(p.price for p in ps)
    cols = _pick(ps, "product_id product_version seller_id title category_id brand status")
    cols["category_path"] = [p.category_path or [] for p in ps]
    cols["price_minor"] = [a or 0 for a in prices]
    cols["currency"] = [c or "" for c in currencies]
    return {"products": (cols, None)}


def _fraud(ps: list[Fraud], ws: list[Wire]) -> Built:
    cols = _pick(
        ps,
        "alert_id subject_type subject_id order_id payment_id customer_id score severity "
        "model_version action",
    )
    cols["rules"] = [p.rules or [] for p in ps]
    return {"fraud_alerts": (cols, None)}


_BUILDERS: dict[str, Callable[[list[Any], list[Wire]], Built]] = {
    "behaviour": _behaviour,
    "cart_events": _cart,
    "checkouts": _checkout,
    "orders": _orders,
    "order_events": _order_event,
    "payments": _payment,
    "customers": _customer,
    "products": _product,
    "fraud_alerts": _fraud,
}


def _table(name: str, cols: Columns, common: dict[str, pa.Array]) -> pa.Table:
    """``name``'s Arrow table: each column from ``cols``, else from the common envelope columns."""
    schema = arrow_schema(name)
    arrays = []
    for f in schema:
        value = cols[f.name] if f.name in cols else common[f.name]
        arrays.append(value if isinstance(value, pa.Array) else pa.array(value, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def tables(batch: Batch, loaded_at: datetime, batch_id: int) -> dict[str, pa.Table]:
    """The Arrow table of every table the batch has rows for (the wide ``events`` always)."""
    with no_cycle_collection():
        return _tables(batch, loaded_at, batch_id)


def _tables(batch: Batch, loaded_at: datetime, batch_id: int) -> dict[str, pa.Table]:
    n = len(batch)
    if not n:
        return {}
    wires, payloads = batch.wires, batch.payloads
    common: dict[str, pa.Array] = {
        "event_id": pa.array(batch.event_ids, pa.string()),
        "event_type": pa.array(_get(wires, "event_type"), pa.string()),
        "occurred_at": batch.occurred,
        "region": pa.array(_get(wires, "region"), pa.string()),
        "topic": pa.array([s.topic for s in batch.sources], pa.string()),
        "kafka_partition": pa.array([s.partition for s in batch.sources], pa.int32()),
        "kafka_offset": pa.array([s.offset for s in batch.sources], pa.int64()),
        "batch_id": pa.array(np.full(n, batch_id, dtype=np.uint64)),
    }
    stamp = int(loaded_at.timestamp() * 1000)
    products = _get(payloads, "product_id")
    events = {
        "schema_version": _get(wires, "schema_version"),
        "event_date": batch.occurred.cast(pa.date32()),
        "domain": [domain_of(s.topic) for s in batch.sources],
        "aggregate_type": _get(wires, "aggregate_type"),
        "aggregate_id": _get(wires, "aggregate_id"),
        "correlation_id": batch.correlation_ids,
        "causation_id": batch.causation_ids,
        "customer_id": _get(payloads, "customer_id"),
        "session_id": _get(payloads, "session_id"),
        "order_id": _get(payloads, "order_id"),
        # a catalog event names its product as the aggregate
        "product_id": [
            w.aggregate_id if p is None and w.aggregate_type == "product" else p
            for p, w in zip(products, wires, strict=True)
        ],
        "payload": _texts(_get(wires, "payload")),
        "loaded_at": pa.array(np.full(n, stamp, dtype=np.int64)).cast(_TS),
    }
    out = {"events": _table("events", events, common)}
    groups: dict[str, list[int]] = defaultdict(list)
    for at, payload in enumerate(payloads):
        if type(payload) is not Ids:
            groups[_TABLE_OF_PAYLOAD[type(payload)]].append(at)
    for group, members in groups.items():
        built = _BUILDERS[group]([payloads[i] for i in members], [wires[i] for i in members])
        for name, (cols, rows) in built.items():
            positions = members if rows is None else [members[r] for r in rows]
            take = pa.array(positions, pa.int64())
            sub = {key: array.take(take) for key, array in common.items()}
            sub["placed_at"] = sub["registered_at"] = sub["occurred_at"]
            out[name] = _table(name, cols, sub)
    return out


_TABLE_OF_PAYLOAD: dict[type, str] = {kind: t for t, kind in _PAYLOADS.items() if t is not None}
