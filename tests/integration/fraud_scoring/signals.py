"""Seeding the real Feast online store (Redis) with fraud signals, as the fraud job writes
them (``features.store.push_signals``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from features.store import apply, feature_store, push_signals
from souk.services import Services


def seeded_store(services: Services, redis_url: str) -> Any:
    """A Feast store on the test stack with the fraud views registered."""
    store = feature_store(services.settings, redis_url)
    apply(store)
    return store


def tag(prefix: str) -> str:
    """A fresh id: signals of one test never touch another's entities."""
    return f"{prefix}-{secrets.token_hex(6)}"


def customer_row(customer_id: str, *, at: datetime | None = None, **values: Any) -> dict[str, Any]:
    """A customer_fraud_signals row (quiet defaults: one order a day ago, no flags)."""
    row: dict[str, Any] = {
        "customer_id": customer_id,
        "orders_1m": 0,
        "orders_1h": 0,
        "orders_24h": 1,
        "amount_mean_minor": 5000.0,
        "amount_std_minor": 1000.0,
        "amount_zscore": 0.0,
        "ship_region_mismatch": 0,
        "ip_region_mismatch": 0,
        "max_line_quantity": 1,
        "new_account_high_value": 0,
        "account_age_s": 30 * 86400,
        "event_timestamp": at or datetime.now(UTC) - timedelta(seconds=5),
    }
    row.update(values)
    return row


def shared_row(key: str, entity_id: str, **values: Any) -> dict[str, Any]:
    """An instrument/device/IP signals row (one order, one customer, one card)."""
    row: dict[str, Any] = {
        key: entity_id,
        "orders_1h": 1,
        "orders_24h": 1,
        "distinct_customers_24h": 1,
        "event_timestamp": datetime.now(UTC) - timedelta(seconds=5),
    }
    if key == "device_id":
        row["distinct_instruments_24h"] = 1
    row.update(values)
    return row


def push(store: Any, view: str, row: dict[str, Any]) -> None:
    """Write one row to the view's online store."""
    push_signals(store, view, [row])
