"""Envelope → analytics rows: the wide ``events`` row plus the typed rows of its domain (pure).

Payloads are read as the registry's JSON data (the loader does not re-validate: producers
did); a field a payload lacks becomes NULL (or its schema default).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.envelope import Envelope

Row = dict[str, Any]
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class Source:
    """Where an event was read: its topic partition and offset."""

    topic: str
    partition: int
    offset: int

    def columns(self) -> Row:
        """The source columns every analytics row carries."""
        return {"topic": self.topic, "kafka_partition": self.partition, "kafka_offset": self.offset}


def domain_of(topic: str) -> str:
    """The domain of a ``<region>.<domain>.v<n>`` topic (or the topic itself)."""
    parts = topic.split(".")
    return parts[1] if len(parts) == 3 else topic


def _money(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, dict):
        return int(value.get("amount_minor", 0)), value.get("currency")
    return None, None


def _common(envelope: Envelope, source: Source) -> Row:
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "occurred_at": envelope.occurred_at.astimezone(UTC),
        "region": envelope.region,
        **source.columns(),
    }


def events_row(envelope: Envelope, source: Source, loaded_at: datetime) -> Row:
    """The wide row: envelope, the ids most queries join on, the payload as JSON text."""
    p = envelope.payload
    occurred = envelope.occurred_at.astimezone(UTC)

    def text(key: str) -> str | None:
        value = p.get(key)
        return None if value is None else str(value)

    product = text("product_id")
    if product is None and envelope.aggregate_type == "product":
        product = envelope.aggregate_id
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "schema_version": envelope.schema_version,
        "occurred_at": occurred,
        "event_date": occurred.date(),
        "region": envelope.region,
        "domain": domain_of(source.topic),
        "aggregate_type": envelope.aggregate_type,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": str(envelope.correlation_id) if envelope.correlation_id else None,
        "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
        "customer_id": text("customer_id"),
        "session_id": text("session_id"),
        "order_id": text("order_id"),
        "product_id": product,
        "payload": _ENCODER.encode(p).decode(),
        "loaded_at": loaded_at,
        **source.columns(),
    }


def _behaviour(e: Envelope, s: Source) -> Row:
    p = e.payload
    price, currency = _money(p.get("price"))
    ids = p.get("product_ids") or p.get("top_product_ids") or []
    return {
        **_common(e, s),
        "session_id": p["session_id"],
        "customer_id": p.get("customer_id"),
        "product_id": p.get("product_id"),
        "sku": p.get("sku"),
        "source": p.get("source"),
        "search_id": p.get("search_id"),
        "recommendation_id": p.get("recommendation_id"),
        "placement": p.get("placement"),
        "model": p.get("model"),
        "model_version": p.get("model_version"),
        "position": p.get("position"),
        "product_ids": list(ids),
        "query": p.get("query"),
        "result_count": p.get("result_count"),
        "price_minor": price,
        "currency": currency,
        "channel": p.get("channel", "web"),
    }


def _cart(e: Envelope, s: Source) -> Row:
    p = e.payload
    price, currency = _money(p.get("unit_price"))
    return {
        **_common(e, s),
        "cart_id": p["cart_id"],
        "session_id": p.get("session_id", ""),
        "customer_id": p.get("customer_id"),
        "sku": p["sku"],
        "product_id": p["product_id"],
        "seller_id": p.get("seller_id"),
        "quantity": p["quantity"],
        "quantity_in_cart": p.get("quantity_in_cart", 0),
        "unit_price_minor": price,
        "currency": currency,
        "reason": p.get("reason"),
        "channel": p.get("channel", "web"),
    }


def _checkout(e: Envelope, s: Source) -> Row:
    p = e.payload
    amount, currency = _money(p.get("amount") or p.get("subtotal"))
    return {
        **_common(e, s),
        "checkout_id": p["checkout_id"],
        "cart_id": p.get("cart_id"),
        "customer_id": p["customer_id"],
        "session_id": p.get("session_id"),
        "order_id": p.get("order_id"),
        "payment_id": p.get("payment_id"),
        "amount_minor": amount,
        "currency": currency,
        "channel": p.get("channel"),
        "step": p.get("step"),
        "code": p.get("code"),
        "device_id": p.get("device_id"),
        "ip_region": p.get("ip_region"),
        "line_count": len(p.get("lines") or []),
    }


def _line_total(line: dict[str, Any]) -> int:
    discount, _ = _money(line.get("discount"))
    return int(line["quantity"]) * int(line["unit_price"]["amount_minor"]) - (discount or 0)


def _order_placed(e: Envelope, s: Source) -> dict[str, list[Row]]:
    p = e.payload
    totals = p["totals"]
    placed = e.occurred_at.astimezone(UTC)
    base = {"event_id": str(e.event_id), "placed_at": placed, "region": e.region, **s.columns()}
    lines = p["lines"]
    order = {
        **base,
        "order_id": p["order_id"],
        "customer_id": p["customer_id"],
        "checkout_id": p.get("checkout_id"),
        "currency": totals["grand_total"]["currency"],
        "subtotal_minor": totals["subtotal"]["amount_minor"],
        "discount_minor": totals["discount"]["amount_minor"],
        "shipping_minor": totals["shipping"]["amount_minor"],
        "tax_minor": totals["tax"]["amount_minor"],
        "grand_total_minor": totals["grand_total"]["amount_minor"],
        "payment_method": p.get("payment_method", ""),
        "channel": p.get("channel", "web"),
        "prime": bool(p.get("prime", False)),
        "line_count": len(lines),
        "units": sum(int(line["quantity"]) for line in lines),
        "ship_country": (p.get("shipping_address") or {}).get("country", ""),
    }
    rows = [
        {
            **base,
            "order_id": p["order_id"],
            "customer_id": p["customer_id"],
            "line_id": line["line_id"],
            "sku": line["sku"],
            "product_id": line["product_id"],
            "seller_id": line["seller_id"],
            "warehouse_id": line.get("warehouse_id"),
            "quantity": line["quantity"],
            "unit_price_minor": line["unit_price"]["amount_minor"],
            "discount_minor": _money(line.get("discount"))[0] or 0,
            "line_total_minor": _line_total(line),
            "currency": line["unit_price"]["currency"],
        }
        for line in lines
    ]
    return {"orders": [order], "order_lines": rows}


def _order_event(e: Envelope, s: Source) -> Row:
    p = e.payload
    amount, currency = _money(p.get("amount") or p.get("refund_amount"))
    return {
        **_common(e, s),
        "order_id": p["order_id"],
        "customer_id": p["customer_id"],
        "reason": p.get("reason"),
        "cancelled_by": p.get("cancelled_by"),
        "line_ids": list(p.get("line_ids") or []),
        "amount_minor": amount,
        "currency": currency,
        "fulfilment_group_id": p.get("fulfilment_group_id"),
        "seller_id": p.get("seller_id"),
        "warehouse_id": p.get("warehouse_id"),
        "carrier": p.get("carrier"),
    }


def _payment(e: Envelope, s: Source) -> Row:
    p = e.payload
    amount, currency = _money(p.get("amount"))
    return {
        **_common(e, s),
        "payment_id": p["payment_id"],
        "order_id": p["order_id"],
        "customer_id": p["customer_id"],
        "amount_minor": amount or 0,
        "currency": currency or "",
        "method": p.get("method"),
        "gateway": p.get("gateway"),
        "stage": p.get("stage"),
        "error_code": p.get("error_code"),
        "retryable": p.get("retryable"),
        "refund_id": p.get("refund_id"),
        "reason": p.get("reason"),
    }


def _customer(e: Envelope, s: Source) -> Row:
    p = e.payload
    return {
        "event_id": str(e.event_id),
        "registered_at": e.occurred_at.astimezone(UTC),
        "region": p.get("region", e.region),
        "customer_id": p["customer_id"],
        "country": p.get("country", ""),
        "locale": p.get("locale", "en"),
        "signup_channel": p.get("signup_channel", "web"),
        "prime": bool(p.get("prime", False)),
        "marketing_opt_in": bool(p.get("marketing_opt_in", False)),
        **s.columns(),
    }


def _product(e: Envelope, s: Source) -> Row:
    p = e.payload
    price, currency = _money(p.get("price"))
    return {
        **_common(e, s),
        "product_id": p["product_id"],
        "product_version": p["product_version"],
        "seller_id": p["seller_id"],
        "title": p["title"],
        "category_id": p["category_id"],
        "category_path": list(p.get("category_path") or []),
        "brand": p.get("brand"),
        "status": p.get("status", "active"),
        "price_minor": price or 0,
        "currency": currency or "",
    }


def _fraud(e: Envelope, s: Source) -> Row:
    p = e.payload
    return {
        "event_id": str(e.event_id),
        "occurred_at": e.occurred_at.astimezone(UTC),
        "region": e.region,
        "alert_id": p["alert_id"],
        "subject_type": p["subject_type"],
        "subject_id": p["subject_id"],
        "order_id": p.get("order_id"),
        "payment_id": p.get("payment_id"),
        "customer_id": p.get("customer_id"),
        "score": float(p["score"]),
        "severity": p["severity"],
        "rules": list(p.get("rules") or []),
        "model_version": p.get("model_version"),
        "action": p.get("action", "review"),
        **s.columns(),
    }


_BEHAVIOUR = {
    "product.viewed",
    "search.performed",
    "recommendation.served",
    "recommendation.clicked",
}


def typed_rows(envelope: Envelope, source: Source) -> dict[str, list[Row]]:
    """The typed rows of one event (none for event types without a typed table)."""
    kind = envelope.event_type
    if kind in _BEHAVIOUR:
        return {"behaviour": [_behaviour(envelope, source)]}
    if kind.startswith("cart."):
        return {"cart_events": [_cart(envelope, source)]}
    if kind.startswith("checkout."):
        return {"checkouts": [_checkout(envelope, source)]}
    if kind == "order.placed":
        return _order_placed(envelope, source)
    if kind.startswith("order."):
        return {"order_events": [_order_event(envelope, source)]}
    if kind.startswith("payment."):
        return {"payments": [_payment(envelope, source)]}
    if kind == "user.registered":
        return {"customers": [_customer(envelope, source)]}
    if kind in ("product.created", "product.updated"):
        return {"products": [_product(envelope, source)]}
    if kind == "fraud.alert_raised":
        return {"fraud_alerts": [_fraud(envelope, source)]}
    return {}


def flatten(records: list[tuple[Envelope, Source]], loaded_at: datetime) -> dict[str, list[Row]]:
    """Rows per table of a batch of events (the wide row for each, typed rows where typed)."""
    out: dict[str, list[Row]] = defaultdict(list)
    for envelope, source in records:
        out["events"].append(events_row(envelope, source, loaded_at))
        for table, rows in typed_rows(envelope, source).items():
            out[table].extend(rows)
    return dict(out)
