"""A small shop, event by event, whose every metric was worked out by hand (see the tests).

Two regions (eu: EUR, us: USD), four customers, four products, four orders, six storefront
sessions, recommendations from two models, two fraud alerts. ``EXPECTED`` in the tests is
computed on paper from the comments here, never by running our own SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import Envelope
from schemas.registry import REGISTRY

MON = datetime(2026, 11, 30, 9, tzinfo=UTC)  # week of 2026-11-30
TUE = datetime(2026, 12, 1, 9, tzinfo=UTC)
NEXT_TUE = datetime(2026, 12, 8, 9, tzinfo=UTC)  # week of 2026-12-07
_ADDRESS = {"eu": {"country": "DE"}, "us": {"country": "US"}}
_CURRENCY = {"eu": "EUR", "us": "USD"}


def _money(minor: int, region: str) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": _CURRENCY[region]}


class Shop:
    """Builds the scenario's envelopes in time order."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self._tick = 0

    def add(self, event_type: str, payload: dict[str, Any], region: str, at: datetime) -> None:
        """One event, a second after the previous one at ``at`` (stable order)."""
        self._tick += 1
        self.events.append(
            REGISTRY.new_event(
                event_type, payload, region=region, occurred_at=at + timedelta(seconds=self._tick)
            )
        )

    def customer(self, customer_id: str, region: str, at: datetime) -> None:
        self.add(
            "user.registered",
            {"customer_id": customer_id, "region": region, "country": _ADDRESS[region]["country"]},
            region,
            at,
        )

    def product(self, product_id: str, seller: str, category: str, version: int) -> None:
        self.add(
            "product.created" if version == 1 else "product.updated",
            {
                "product_id": product_id,
                "seller_id": seller,
                "product_version": version,
                "title": f"Product {product_id}",
                "category_id": category,
                "price": _money(1000, "eu"),
            },
            "eu",
            MON - timedelta(days=1),
        )

    def order(
        self,
        order_id: str,
        customer: str,
        region: str,
        at: datetime,
        lines: list[tuple[str, str, int, int, int]],  # product, seller, qty, unit, discount
        shipping: int,
        tax: int,
    ) -> None:
        subtotal = sum(q * u for _, _, q, u, _ in lines)
        discount = sum(d for *_, d in lines)
        line_items = [
            {
                "line_id": f"{order_id}-{i}",
                "sku": f"sku-{p}",
                "product_id": p,
                "seller_id": s,
                "quantity": q,
                "unit_price": _money(u, region),
                "warehouse_id": f"wh-{region}",
                **({"discount": _money(d, region)} if d else {}),
            }
            for i, (p, s, q, u, d) in enumerate(lines)
        ]
        self.add(
            "order.placed",
            {
                "order_id": order_id,
                "customer_id": customer,
                "region": region,
                "lines": line_items,
                "totals": {
                    "subtotal": _money(subtotal, region),
                    "discount": _money(discount, region),
                    "shipping": _money(shipping, region),
                    "tax": _money(tax, region),
                    "grand_total": _money(subtotal - discount + shipping + tax, region),
                },
                "shipping_address": _ADDRESS[region],
                "fulfilment_groups": [
                    {
                        "group_id": f"{order_id}-g",
                        "seller_id": lines[0][1],
                        "warehouse_id": f"wh-{region}",
                        "line_ids": [line["line_id"] for line in line_items],
                    }
                ],
                "payment_method": "card",
            },
            region,
            at,
        )

    def payment(
        self,
        kind: str,
        order_id: str,
        customer: str,
        region: str,
        at: datetime,
        amount: int,
        **extra: Any,
    ) -> None:
        payload: dict[str, Any] = {
            "payment_id": f"pay-{order_id}",
            "order_id": order_id,
            "customer_id": customer,
            "amount": _money(amount, region),
            **extra,
        }
        if kind in ("payment.authorized", "payment.captured", "payment.failed"):
            payload.setdefault("method", "card")
        if kind == "payment.authorized":
            payload["gateway"] = f"sandbox-{region}"
        if kind == "payment.refunded":
            payload.update(refund_id=f"ref-{order_id}", reason="cancellation")
        self.add(kind, payload, region, at)

    def session(
        self,
        session: str,
        region: str,
        channel: str,
        at: datetime,
        *,
        view: bool,
        cart: str | None = None,
        checkout: str | None = None,
        paid: bool = False,
    ) -> None:
        if view:
            self.add(
                "product.viewed",
                {"session_id": session, "product_id": "p1", "channel": channel},
                region,
                at,
            )
        if cart:
            self.add(
                "cart.item_added",
                {
                    "cart_id": cart,
                    "session_id": session,
                    "sku": "sku-p1",
                    "product_id": "p1",
                    "seller_id": "s1",
                    "quantity": 1,
                    "quantity_in_cart": 1,
                    "unit_price": _money(1000, region),
                    "channel": channel,
                },
                region,
                at,
            )
        if checkout:
            self.add(
                "checkout.started",
                {
                    "checkout_id": checkout,
                    "cart_id": cart,
                    "customer_id": "c1",
                    "lines": [
                        {
                            "line_id": "l",
                            "sku": "sku-p1",
                            "product_id": "p1",
                            "seller_id": "s1",
                            "quantity": 1,
                            "unit_price": _money(1000, region),
                        }
                    ],
                    "subtotal": _money(1000, region),
                    "shipping_address": _ADDRESS[region],
                    "channel": channel,
                },
                region,
                at,
            )
            if paid:
                self.add(
                    "checkout.completed",
                    {"checkout_id": checkout, "customer_id": "c1", "order_id": f"o-{checkout}"},
                    region,
                    at,
                )
            else:
                self.add(
                    "checkout.failed",
                    {
                        "checkout_id": checkout,
                        "customer_id": "c1",
                        "step": "payment",
                        "code": "card_declined",
                    },
                    region,
                    at,
                )

    def served(self, rec: str, model: str, version: str | None) -> None:
        self.add(
            "recommendation.served",
            {
                "recommendation_id": rec,
                "session_id": "s3",
                "placement": "home",
                "model": model,
                "model_version": version,
                "product_ids": ["p1", "p2"],
                "channel": "ios",
            },
            "eu",
            MON,
        )

    def clicked(self, rec: str) -> None:
        self.add(
            "recommendation.clicked",
            {
                "recommendation_id": rec,
                "session_id": "s3",
                "placement": "home",
                "product_id": "p1",
                "position": 0,
                "channel": "ios",
            },
            "eu",
            MON,
        )

    def alert(self, alert: str, region: str, rules: list[str]) -> None:
        self.add(
            "fraud.alert_raised",
            {
                "alert_id": alert,
                "subject_type": "order",
                "subject_id": alert,
                "score": 0.7,
                "severity": "medium",
                "rules": rules,
            },
            region,
            TUE,
        )


def build() -> list[Envelope]:
    """The scenario's events."""
    shop = Shop()
    # catalog: p1 moved from cat_old to cat_apparel (v2); p4 never had a catalog event
    shop.product("p1", "s1", "cat_old", 1)
    shop.product("p1", "s1", "cat_apparel", 2)
    shop.product("p2", "s2", "cat_home", 1)
    shop.product("p3", "s1", "cat_home", 1)
    # customers: c1, c2, c3 sign up in the week of 11-30, c4 in the week of 12-07
    shop.customer("c1", "eu", MON)
    shop.customer("c2", "eu", TUE)
    shop.customer("c3", "us", TUE)
    shop.customer("c4", "us", NEXT_TUE)
    # o1 eu MON: p1 2x1000 + p2 1x500 (-100) + shipping 300 + tax 200 = 2900 EUR
    shop.order(
        "o1", "c1", "eu", MON, [("p1", "s1", 2, 1000, 0), ("p2", "s2", 1, 500, 100)], 300, 200
    )
    # o2 eu TUE: p3 1x1500 = 1500 EUR, later cancelled as a whole and refunded
    shop.order("o2", "c2", "eu", TUE, [("p3", "s1", 1, 1500, 0)], 0, 0)
    # o3 us TUE: p1 3x1200 + p4 1x400 + shipping 500 = 4500 USD; first authorisation declined
    shop.order("o3", "c3", "us", TUE, [("p1", "s1", 3, 1200, 0), ("p4", "s3", 1, 400, 0)], 500, 0)
    # o4 eu NEXT_TUE: p2 3x500 = 1500 EUR; one line cancelled (not a whole-order cancel)
    shop.order("o4", "c1", "eu", NEXT_TUE, [("p2", "s2", 3, 500, 0)], 0, 0)
    for order, customer, region, at, amount in (
        ("o1", "c1", "eu", MON, 2900),
        ("o2", "c2", "eu", TUE, 1500),
        ("o3", "c3", "us", TUE, 4500),
        ("o4", "c1", "eu", NEXT_TUE, 1500),
    ):
        if order == "o3":
            shop.payment(
                "payment.failed",
                order,
                customer,
                region,
                at,
                amount,
                stage="authorization",
                error_code="card_declined",
            )
        shop.payment("payment.authorized", order, customer, region, at, amount)
        shop.payment("payment.captured", order, customer, region, at, amount)
        shop.add(
            "order.paid",
            {
                "order_id": order,
                "customer_id": customer,
                "payment_id": f"pay-{order}",
                "amount": _money(amount, region),
                "method": "card",
            },
            region,
            at,
        )
    # a failed capture retry on o4: not an authorisation decline
    shop.payment(
        "payment.failed",
        "o4",
        "c1",
        "eu",
        NEXT_TUE,
        1500,
        stage="capture",
        error_code="timeout",
        retryable=True,
    )
    shop.add(
        "order.cancelled",
        {
            "order_id": "o2",
            "customer_id": "c2",
            "reason": "customer_request",
            "cancelled_by": "customer",
            "refund_amount": _money(1500, "eu"),
        },
        "eu",
        TUE,
    )
    shop.payment("payment.refunded", "o2", "c2", "eu", TUE, 1500)
    shop.add(
        "order.cancelled",
        {
            "order_id": "o4",
            "customer_id": "c1",
            "reason": "out_of_stock",
            "cancelled_by": "system",
            "line_ids": ["o4-0"],
        },
        "eu",
        NEXT_TUE,
    )
    # sessions (funnel): s1 eu web paid; s2 eu web checkout failed; s3 eu ios view only;
    # s4 us web paid; s5 us web cart without a view; s6 eu web cart, no checkout
    shop.session("s1", "eu", "web", MON, view=True, cart="k1", checkout="ch1", paid=True)
    shop.session("s2", "eu", "web", MON, view=True, cart="k2", checkout="ch2")
    shop.session("s3", "eu", "ios", MON, view=True)
    shop.session("s4", "us", "web", TUE, view=True, cart="k3", checkout="ch3", paid=True)
    shop.session("s5", "us", "web", TUE, view=False, cart="k4")
    shop.session("s6", "eu", "web", TUE, view=True, cart="k5")
    # recommendations (in session s3): als v1 serves r1 r2 r3, r1 clicked twice, r2 once;
    # als v2 serves r4 (no click); trending (no version) serves r5, clicked
    for rec, model, version in (
        ("r1", "als", "v1"),
        ("r2", "als", "v1"),
        ("r3", "als", "v1"),
        ("r4", "als", "v2"),
        ("r5", "trending", None),
    ):
        shop.served(rec, model, version)
    for rec in ("r1", "r1", "r2", "r5"):
        shop.clicked(rec)
    # fraud: checkouts started eu 2 (ch1, ch2), us 1 (ch3); alerts a1 eu, a2 us
    shop.alert("a1", "eu", ["velocity", "new_account_high_value"])
    shop.alert("a2", "us", ["velocity"])
    return shop.events
