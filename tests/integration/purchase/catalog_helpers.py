"""Sellers and products for integration tests, through the real HTTP API.

Typical use in any slice's test::

    admin = admin_headers(services.tokens)
    seller = approved_seller(client, admin)
    product = list_product(client, seller, skus_prices={fresh_sku(): 1999})
    sku = product["variants"][0]["sku"]

Everything is fresh (new customer, new seller, new SKUs), so tests may run in parallel on one
database.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from tests.integration.http import register
from transactional.shared.regions import REGION_CURRENCY, REGION_DEFAULT_COUNTRY

DEFAULT_CATEGORY = "cat_electronics_phones"


def fresh_sku(prefix: str = "SKU") -> str:
    """A SKU nobody has listed yet, e.g. ``SKU-3F9A0C12B7``."""
    return f"{prefix}-{secrets.token_hex(5).upper()}"


def apply_as_seller(client: Any, shopper: dict[str, Any], **overrides: Any) -> Any:
    """POST /v1/sellers for ``shopper`` (from ``register``); returns the raw response."""
    region = overrides.pop("region", "eu")
    body = {
        "legal_name": "Test Trading Ltd",
        "display_name": f"Test Shop {secrets.token_hex(3)}",
        "business_type": "company",
        "country": REGION_DEFAULT_COUNTRY.get(region, "DE"),
        "region": region,
        "documents": [
            {"kind": "business_registration", "reference": "doc-store://reg/123"},
            {"kind": "tax_id", "reference": "doc-store://tax/456"},
        ],
        **overrides,
    }
    return client.post("/v1/sellers", json=body, headers=shopper["headers"])


def approved_seller(
    client: Any, admin_headers: Mapping[str, str], *, region: str = "eu"
) -> dict[str, Any]:
    """A new customer whose seller account an admin approved.

    ``admin_headers`` are an admin's auth headers (``tests.integration.http.admin_headers``).
    Returns the shopper dict of ``register`` (``customer_id``, ``headers``...) plus
    ``seller_id``, ``region`` and ``currency`` (the region's currency).
    """
    shopper = register(client, region=region, currency=REGION_CURRENCY.get(region, "EUR"))
    applied = apply_as_seller(client, shopper, region=region)
    assert applied.status_code == 201, applied.text
    seller_id = applied.json()["seller_id"]
    decided = client.post(
        f"/v1/admin/sellers/{seller_id}/kyc",
        json={"decision": "approved", "reason": "documents verified"},
        headers=dict(admin_headers),
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["kyc_status"] == "approved"
    return {
        **shopper,
        "seller_id": seller_id,
        "region": region,
        "currency": REGION_CURRENCY.get(region, "EUR"),
    }


def list_product(
    client: Any,
    seller: Mapping[str, Any],
    *,
    skus_prices: Mapping[str, int | Mapping[str, int]],
    category_id: str = DEFAULT_CATEGORY,
    title: str = "Test product",
    **fields: Any,
) -> dict[str, Any]:
    """List a product for ``seller`` (from ``approved_seller``); returns the created product.

    ``skus_prices`` maps each SKU to its price: an int is minor units in the seller's
    currency, a mapping is ``{currency: minor units}``. Use ``fresh_sku()`` for new SKUs.
    Extra ``fields`` (description, brand, attributes, images) go into the request body.
    """
    variants = [
        {
            "sku": sku,
            "prices": ({seller["currency"]: price} if isinstance(price, int) else dict(price)),
            "attributes": {},
        }
        for sku, price in skus_prices.items()
    ]
    response = client.post(
        "/v1/products",
        json={"title": title, "category_id": category_id, "variants": variants, **fields},
        headers=seller["headers"],
    )
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product
