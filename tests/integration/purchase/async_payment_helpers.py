"""Helpers of the async-payment tests (3-D Secure, UPI, webhooks): India shoppers and stock,
signed deliveries, and ageing a saga past its deadline."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from tests.integration.http import register
from tests.integration.purchase.catalog_helpers import fresh_sku, list_product
from transactional.payments.webhooks import SignedWebhook, signature_header, webhook_body

THREE_DS = "4000002760003184"
UPI_SECRET = "whsec_sandbox_upi_dev"  # the sandbox provider's default secret (settings)
IN_WAREHOUSE = "wh_in_1"
IN_ADDRESS = {
    "full_name": "Asha Rao",
    "line1": "12 MG Road",
    "city": "Bengaluru",
    "postal_code": "560001",
    "country": "IN",
}


def india_sku(client: Any, seller: Mapping[str, Any], units: int, price_minor: int = 49900) -> str:
    """A new SKU of an India ``seller`` priced in INR with ``units`` on hand in wh_in_1."""
    sku = fresh_sku("UPI")
    list_product(client, seller, skus_prices={sku: {"INR": price_minor}}, title=f"Chai {sku}")
    response = client.put(
        f"/v1/inventory/{sku}/warehouses/{IN_WAREHOUSE}",
        json={"on_hand": units, "reason": "receipt"},
        headers=seller["headers"],
    )
    assert response.status_code == 200, response.text
    return sku


def india_shopper(client: Any) -> dict[str, Any]:
    """A customer of the India region paying in INR."""
    return register(client, region="in", currency="INR")


def cart_of(
    client: Any, shopper: Mapping[str, Any], items: Mapping[str, int], currency: str
) -> str:
    """A new cart of the shopper in ``currency`` holding ``items``."""
    created = client.post("/v1/carts", json={"currency": currency}, headers=shopper["headers"])
    assert created.status_code in (200, 201), created.text
    cart_id: str = created.json()["cart_id"]
    for sku, quantity in items.items():
        added = client.post(
            f"/v1/carts/{cart_id}/items",
            json={"sku": sku, "quantity": quantity},
            headers=shopper["headers"],
        )
        assert added.status_code == 200, added.text
    return cart_id


def upi_body(cart_id: str, vpa: str) -> dict[str, Any]:
    """A POST /v1/checkout body paying by UPI collect, shipping in India."""
    return {
        "cart_id": cart_id,
        "shipping_address": dict(IN_ADDRESS),
        "payment_method": {"type": "upi", "vpa": vpa},
    }


def stock_in(engine: Engine, sku: str, warehouse: str) -> tuple[int, int]:
    """(on_hand, reserved) of a SKU in a warehouse."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT on_hand, reserved FROM stock_levels WHERE sku = :sku AND warehouse_id = :w"
            ),
            {"sku": sku, "w": warehouse},
        ).one()
    return int(row.on_hand), int(row.reserved)


def payment_row(engine: Engine, payment_id: str) -> dict[str, Any]:
    """The payments row."""
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text("SELECT * FROM payments WHERE payment_id = :id"), {"id": payment_id}
            )
            .mappings()
            .one()
        )


def deliveries_of(engine: Engine, reference: str) -> list[dict[str, Any]]:
    """The webhook deliveries received for a gateway reference."""
    with engine.connect() as connection:
        return [
            dict(row)
            for row in connection.execute(
                text(
                    "SELECT delivery_id, type, outcome FROM payment_webhook_deliveries "
                    "WHERE reference = :r ORDER BY received_at"
                ),
                {"r": reference},
            ).mappings()
        ]


def age_action(engine: Engine, checkout_id: str, by: timedelta = timedelta(days=1)) -> None:
    """Move a waiting saga's ask and lease ``by`` into the past: its deadline has passed."""
    with engine.begin() as connection:
        history = connection.execute(
            text("SELECT history FROM checkouts WHERE checkout_id = :id"), {"id": checkout_id}
        ).scalar_one()
        for record in history:
            if record["step"] == "action_required":
                record["at"] = (datetime.fromisoformat(record["at"]) - by).isoformat()
        connection.execute(
            text(
                "UPDATE checkouts SET history = CAST(:history AS jsonb), "
                "lease_until = now() - interval '1 second' WHERE checkout_id = :id"
            ),
            {"id": checkout_id, "history": json.dumps(history)},
        )


def signed(
    reference: str,
    type_: str,
    amount_minor: int,
    *,
    currency: str = "INR",
    delivery_id: str | None = None,
    failure_code: str | None = None,
    secret: str = UPI_SECRET,
    at: datetime | None = None,
) -> SignedWebhook:
    """A delivery as the UPI sandbox provider would sign it (or with another secret/time)."""
    when = at or datetime.now(UTC)
    body = webhook_body(
        delivery_id or f"evt_{uuid.uuid4().hex}",
        type_,  # type: ignore[arg-type]
        reference,
        amount_minor,
        currency,
        when,
        failure_code,
    )
    header = signature_header(secret, int(when.timestamp()), body)
    return SignedWebhook("sandbox-upi", body, {"Souk-Signature": header})


def post_webhook(client: Any, webhook: SignedWebhook) -> Any:
    """POST a delivery to the webhook endpoint, as the provider does."""
    return client.post(
        f"/v1/payments/webhooks/{webhook.provider}",
        content=webhook.body,
        headers={**webhook.headers, "Content-Type": "application/json"},
    )


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "a condition") -> None:
    """Poll ``predicate`` until true (for a background recovery to act)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
