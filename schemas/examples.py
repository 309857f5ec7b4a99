"""One realistic example payload per registered event type (JSON-shaped, as on the wire).

Used by tests (every event must round-trip), docs and anyone who needs a valid event fast.
Adding an event type without an example here fails the schema tests on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaRegistry

__all__ = ["EXAMPLES", "example_envelope"]


def _eur(amount_minor: int) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": "EUR"}


_LINE = {
    "line_id": "lin_1",
    "sku": "sku_tshirt_m_red",
    "product_id": "prd_01J9Z3K8Q4M2",
    "seller_id": "sel_acme",
    "quantity": 2,
    "unit_price": _eur(1999),
    "warehouse_id": "wh_eu_1",
}
_LINE_2 = {
    "line_id": "lin_2",
    "sku": "sku_mug_blue",
    "product_id": "prd_01J9Z3K8Q4M3",
    "seller_id": "sel_potter",
    "quantity": 1,
    "unit_price": _eur(1250),
    "warehouse_id": "wh_eu_2",
    "discount": _eur(250),
}
_ADDRESS = {"country": "DE", "subdivision": "BE", "city": "Berlin", "postal_code": "10115"}
_PRODUCT = {
    "product_id": "prd_01J9Z3K8Q4M2",
    "seller_id": "sel_acme",
    "product_version": 1,
    "title": "Organic Cotton T-Shirt",
    "description": "Soft, breathable, fair-trade cotton.",
    "category_id": "cat_apparel",
    "category_path": ["Fashion", "Apparel", "T-Shirts"],
    "brand": "Acme",
    "status": "active",
    "price": _eur(1999),
    "variants": [
        {"sku": "sku_tshirt_m_red", "price": _eur(1999), "attributes": {"size": "M"}},
        {"sku": "sku_tshirt_l_red", "price": _eur(1999), "attributes": {"size": "L"}},
    ],
    "attributes": {"material": "cotton"},
    "image_urls": ["https://cdn.souk.example/p/prd_01J9Z3K8Q4M2/1.webp"],
    "prime_eligible": True,
    "locale": "en-GB",
}

EXAMPLES: Mapping[str, Mapping[str, Any]] = {
    # catalog
    "product.created": _PRODUCT,
    "product.updated": {
        **_PRODUCT,
        "product_version": 2,
        "title": "Organic Cotton T-Shirt (Unisex)",
        "changed_fields": ["title"],
    },
    "product.price_changed": {
        "product_id": "prd_01J9Z3K8Q4M2",
        "sku": "sku_tshirt_m_red",
        "seller_id": "sel_acme",
        "old_price": _eur(1999),
        "new_price": _eur(1799),
        "reason": "repricing",
        "effective_at": "2025-03-01T00:00:00Z",
    },
    # inventory
    "stock.adjusted": {
        "sku": "sku_tshirt_m_red",
        "warehouse_id": "wh_eu_1",
        "delta": 120,
        "on_hand_after": 140,
        "available_after": 130,
        "reason": "receipt",
        "reference_id": "po_778",
    },
    "stock.reserved": {
        "reservation_id": "rsv_1",
        "sku": "sku_tshirt_m_red",
        "warehouse_id": "wh_eu_1",
        "quantity": 2,
        "checkout_id": "chk_1",
        "expires_at": "2025-03-01T12:15:00Z",
        "available_after": 128,
    },
    "stock.released": {
        "reservation_id": "rsv_1",
        "sku": "sku_tshirt_m_red",
        "warehouse_id": "wh_eu_1",
        "quantity": 2,
        "reason": "payment_failed",
        "order_id": "ord_1",
        "available_after": 130,
    },
    "stock.committed": {
        "reservation_id": "rsv_1",
        "sku": "sku_tshirt_m_red",
        "warehouse_id": "wh_eu_1",
        "quantity": 2,
        "order_id": "ord_1",
        "on_hand_after": 138,
    },
    # carts
    "cart.item_added": {
        "cart_id": "crt_1",
        "session_id": "ses_1",
        "customer_id": "cus_1",
        "sku": "sku_tshirt_m_red",
        "product_id": "prd_01J9Z3K8Q4M2",
        "seller_id": "sel_acme",
        "quantity": 2,
        "quantity_in_cart": 2,
        "unit_price": _eur(1999),
        "channel": "ios",
        "recommendation_id": "rec_1",
    },
    "cart.item_removed": {
        "cart_id": "crt_1",
        "session_id": "ses_1",
        "customer_id": "cus_1",
        "sku": "sku_tshirt_m_red",
        "product_id": "prd_01J9Z3K8Q4M2",
        "quantity": 1,
        "quantity_in_cart": 1,
        "reason": "user",
    },
    # checkout
    "checkout.started": {
        "checkout_id": "chk_1",
        "cart_id": "crt_1",
        "customer_id": "cus_1",
        "session_id": "ses_1",
        "lines": [{k: v for k, v in _LINE.items() if k != "warehouse_id"}],
        "subtotal": _eur(3998),
        "shipping_address": _ADDRESS,
        "coupon_codes": ["SPRING10"],
        "prime": True,
        "device_id": "dev_3f9a2c",
        "client_ip": "203.0.113.7",
        "ip_region": "eu",
        "instrument_id": "card_5b0e4c1d9a7f3e2b8c6d4a1f0e9b7c3d",
    },
    # orders
    "order.placed": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "checkout_id": "chk_1",
        "region": "eu",
        "lines": [_LINE, _LINE_2],
        "totals": {
            "subtotal": _eur(5248),
            "discount": _eur(250),
            "shipping": _eur(499),
            "tax": _eur(950),
            "grand_total": _eur(6447),
        },
        "shipping_address": _ADDRESS,
        "fulfilment_groups": [
            {
                "group_id": "ful_1",
                "seller_id": "sel_acme",
                "warehouse_id": "wh_eu_1",
                "line_ids": ["lin_1"],
                "shipping_speed": "prime",
            },
            {
                "group_id": "ful_2",
                "seller_id": "sel_potter",
                "warehouse_id": "wh_eu_2",
                "line_ids": ["lin_2"],
            },
        ],
        "payment_method": "card",
        "coupon_codes": ["SPRING10"],
        "prime": True,
        "channel": "web",
    },
    "order.paid": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "payment_id": "pay_1",
        "amount": _eur(6447),
        "method": "card",
    },
    "order.packed": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "fulfilment_group_id": "ful_1",
        "seller_id": "sel_acme",
        "warehouse_id": "wh_eu_1",
        "line_ids": ["lin_1"],
        "package_count": 1,
    },
    "order.shipped": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "fulfilment_group_id": "ful_1",
        "shipment_id": "shp_1",
        "warehouse_id": "wh_eu_1",
        "carrier": "dhl",
        "tracking_number": "JD014600003DE",
        "estimated_delivery": "2025-03-03T18:00:00Z",
    },
    "order.delivered": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "fulfilment_group_id": "ful_1",
        "shipment_id": "shp_1",
        "delivered_at": "2025-03-03T14:12:09+01:00",
        "order_complete": False,
    },
    "order.cancelled": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "reason": "customer_request",
        "cancelled_by": "customer",
        "line_ids": ["lin_2"],
        "refund_amount": _eur(1000),
    },
    # payments
    "payment.authorized": {
        "payment_id": "pay_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "amount": _eur(6447),
        "method": "card",
        "gateway": "stripe-eu",
        "gateway_reference": "pi_3Ox",
        "instrument_token": "tok_vault_9f2",
        "instrument_country": "DE",
        "expires_at": "2025-03-08T12:00:00Z",
    },
    "payment.captured": {
        "payment_id": "pay_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "amount": _eur(6447),
        "method": "card",
        "gateway_reference": "ch_3Ox",
    },
    "payment.failed": {
        "payment_id": "pay_2",
        "order_id": "ord_2",
        "customer_id": "cus_2",
        "amount": _eur(2599),
        "method": "upi",
        "stage": "authorization",
        "error_code": "insufficient_funds",
        "error_message": "The card has insufficient funds.",
        "retryable": False,
        "attempt": 1,
    },
    "payment.refunded": {
        "payment_id": "pay_1",
        "refund_id": "rfd_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "amount": _eur(1999),
        "return_id": "ret_1",
        "reason": "return",
    },
    # shipments
    "shipment.created": {
        "shipment_id": "shp_1",
        "order_id": "ord_1",
        "fulfilment_group_id": "ful_1",
        "seller_id": "sel_acme",
        "warehouse_id": "wh_eu_1",
        "carrier": "dhl",
        "service_level": "prime",
        "tracking_number": "JD014600003DE",
        "line_ids": ["lin_1"],
        "destination": {**_ADDRESS, "address_id": "adr_1"},
        "estimated_delivery": "2025-03-03T18:00:00Z",
    },
    "shipment.status_changed": {
        "shipment_id": "shp_1",
        "order_id": "ord_1",
        "carrier": "dhl",
        "tracking_number": "JD014600003DE",
        "old_status": "in_transit",
        "new_status": "out_for_delivery",
        "location": "Berlin",
        "carrier_event_at": "2025-03-03T07:40:00Z",
    },
    # returns
    "return.requested": {
        "return_id": "ret_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "lines": [
            {"line_id": "lin_1", "sku": "sku_tshirt_m_red", "quantity": 1, "reason": "damaged"}
        ],
        "requested_refund": _eur(1999),
        "comment": "Seam came apart on first wash.",
    },
    "return.received": {
        "return_id": "ret_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "warehouse_id": "wh_eu_1",
        "lines": [
            {
                "line_id": "lin_1",
                "sku": "sku_tshirt_m_red",
                "quantity": 1,
                "condition": "damaged",
                "restock": False,
            }
        ],
    },
    "refund.issued": {
        "refund_id": "rfd_1",
        "return_id": "ret_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "payment_id": "pay_1",
        "amount": _eur(1999),
        "method": "original_payment",
    },
    # reviews
    "review.posted": {
        "review_id": "rev_1",
        "product_id": "prd_01J9Z3K8Q4M2",
        "sku": "sku_tshirt_m_red",
        "seller_id": "sel_acme",
        "customer_id": "cus_1",
        "order_id": "ord_1",
        "rating": 4,
        "title": "Great fit",
        "body": "Fits true to size, colour as pictured.",
        "verified_purchase": True,
        "language": "en",
    },
    # promotions
    "promotion.applied": {
        "promotion_id": "prm_spring10",
        "kind": "coupon",
        "code": "SPRING10",
        "checkout_id": "chk_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "discount": _eur(250),
        "line_ids": ["lin_2"],
    },
    "deal.started": {
        "deal_id": "dl_1",
        "product_id": "prd_01J9Z3K8Q4M3",
        "sku": "sku_mug_blue",
        "seller_id": "sel_potter",
        "deal_price": _eur(799),
        "list_price": _eur(1250),
        "slot_quantity": 200,
        "starts_at": "2025-03-01T10:00:00Z",
        "ends_at": "2025-03-01T16:00:00Z",
        "prime_only": True,
    },
    "deal.ended": {
        "deal_id": "dl_1",
        "product_id": "prd_01J9Z3K8Q4M3",
        "sku": "sku_mug_blue",
        "reason": "sold_out",
        "units_sold": 200,
    },
    # customers
    "checkout.completed": {
        "checkout_id": "chk_1",
        "customer_id": "cus_1",
        "order_id": "ord_1",
        "cart_id": "crt_1",
        "payment_id": "pay_1",
        "amount": _eur(6447),
        "ship_region": "eu",
        "shipping_address": _ADDRESS,
        "warehouse_ids": ["wh_eu_1", "wh_eu_2"],
    },
    "checkout.failed": {
        "checkout_id": "chk_1",
        "customer_id": "cus_1",
        "step": "payment",
        "code": "card_declined",
        "cart_id": "crt_1",
        "order_id": "ord_1",
        "payment_id": "pay_1",
        "compensated": ["order", "reserve"],
    },
    "customer.address_added": {
        "customer_id": "cus_1",
        "address_id": "adr_1",
        "country": "DE",
        "subdivision": "BE",
        "city": "Berlin",
        "is_default": True,
    },
    "order.returned": {
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "returned_at": "2025-03-10T10:00:00Z",
        "refund_amount": _eur(6447),
        "note": "parcel back",
    },
    "payment.voided": {
        "payment_id": "pay_1",
        "order_id": "ord_1",
        "customer_id": "cus_1",
        "amount": _eur(6447),
        "method": "card",
        "gateway_reference": "pi_3Ox",
    },
    "user.registered": {
        "customer_id": "cus_1",
        "region": "eu",
        "country": "DE",
        "locale": "de-DE",
        "signup_channel": "android",
        "marketing_opt_in": True,
    },
    # behaviour
    "product.viewed": {
        "session_id": "ses_1",
        "customer_id": None,
        "product_id": "prd_01J9Z3K8Q4M2",
        "sku": "sku_tshirt_m_red",
        "source": "search",
        "search_id": "srch_1",
        "position": 0,
        "price": _eur(1999),
        "channel": "web",
    },
    "search.performed": {
        "search_id": "srch_1",
        "session_id": "ses_1",
        "query": "organic t-shirt",
        "filters": {"size": ["M"], "brand": ["Acme"]},
        "sort": "relevance",
        "result_count": 42,
        "top_product_ids": ["prd_01J9Z3K8Q4M2", "prd_01J9Z3K8Q4M9"],
        "index_version": "products_eu_v7",
        "latency_ms": 38,
    },
    "recommendation.served": {
        "recommendation_id": "rec_1",
        "session_id": "ses_1",
        "customer_id": "cus_1",
        "placement": "pdp.similar",
        "model": "item2vec",
        "model_version": "2025-02-28",
        "product_ids": ["prd_01J9Z3K8Q4M3", "prd_01J9Z3K8Q4M9"],
        "context_product_id": "prd_01J9Z3K8Q4M2",
    },
    "recommendation.clicked": {
        "recommendation_id": "rec_1",
        "session_id": "ses_1",
        "customer_id": "cus_1",
        "placement": "pdp.similar",
        "product_id": "prd_01J9Z3K8Q4M3",
        "position": 0,
    },
    # fraud
    "fraud.alert_raised": {
        "alert_id": "frd_1",
        "subject_type": "order",
        "subject_id": "ord_2",
        "order_id": "ord_2",
        "payment_id": "pay_2",
        "customer_id": "cus_2",
        "score": 0.91,
        "severity": "high",
        "rules": ["location_mismatch", "bulk_order"],
        "model_version": "gbm-2025-02",
        "action": "hold",
    },
    # sellers
    "seller.applied": {
        "seller_id": "sel_acme",
        "display_name": "Acme Apparel",
        "business_type": "company",
        "country": "DE",
        "region": "eu",
        "categories": ["cat_apparel"],
    },
    "seller.kyc_changed": {
        "seller_id": "sel_acme",
        "old_status": "in_review",
        "new_status": "verified",
        "reviewer_id": "adm_7",
        "documents_verified": ["tax_id", "bank_account"],
    },
}


def example_envelope(
    event_type: str, region: str = "eu", registry: SchemaRegistry = REGISTRY
) -> Envelope:
    """A fresh, valid envelope carrying the example payload of ``event_type``."""
    return registry.new_event(event_type, EXAMPLES[event_type], region=region)
