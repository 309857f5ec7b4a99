"""The simulation runner against an in-memory shop (httpx MockTransport): flows and counting."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from souk.seed import (
    SeededCatalog,
    SeededProduct,
    SeededSku,
    discover_catalog,
    storefront_prices,
    zipf_weights,
)
from souk.simulation import CARDS, SimulationConfig, SimulationReport, run_simulation


def catalog(stock: int = 5) -> SeededCatalog:
    weights = zipf_weights(12)
    return SeededCatalog(
        [
            SeededProduct(
                f"prd_{i}",
                "sel_1",
                f"Thing {i}",
                "cat_a" if i % 2 else "cat_b",
                (
                    SeededSku(
                        f"SKU-{i}",
                        f"prd_{i}",
                        storefront_prices(999 * (i + 1), "EUR"),
                        {"wh_eu_1": stock},
                    ),
                ),
                weights[i],
            )
            for i in range(12)
        ]
    )


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "code": code, "detail": code, **extra})


@dataclass
class FakeShop:
    """Just enough of the Souk API, with its stock and idempotency rules, in memory."""

    shop: SeededCatalog
    fail_path: str | None = None  # answer 500 on this path
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    customers: dict[str, str] = field(default_factory=dict)  # email -> customer id
    carts: dict[str, dict[str, Any]] = field(default_factory=dict)
    cart_of: dict[str, str] = field(default_factory=dict)  # customer -> cart
    stock: dict[str, int] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stock = self.shop.initial_stock()

    def new(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids)}"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else {}
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        who = token.removeprefix("tok-") if token else None
        if path == self.fail_path:
            return httpx.Response(500, json={"status": 500})
        parts = path.strip("/").split("/")[1:]
        if (method, path) == ("POST", "/v1/customers"):
            if body["email"] in self.customers:
                return problem(409, "email_taken")
            self.customers[body["email"]] = self.new("cus")
            return httpx.Response(201, json={"customer_id": self.customers[body["email"]]})
        if (method, path) == ("POST", "/v1/auth/token"):
            customer = self.customers[body["email"]]
            guest = body.get("guest_cart_id")
            cart_id = self.cart_of.get(customer)
            if guest:
                if cart_id is None:
                    cart_id = self.cart_of[customer] = guest
                else:
                    for sku, qty in self.carts[guest]["lines"].items():
                        lines = self.carts[cart_id]["lines"]
                        lines[sku] = lines.get(sku, 0) + qty
            return httpx.Response(
                200,
                json={
                    "access_token": f"tok-{customer}",
                    "customer_id": customer,
                    "cart_id": cart_id,
                },
            )
        if (method, path) == ("POST", "/v1/customers/me/addresses"):
            return httpx.Response(201, json={"address_id": self.new("adr")})
        if path == "/v1/products":
            items = [
                {"product_id": p.product_id}
                for p in self.shop.products
                if p.category_id == request.url.params.get("category")
            ]
            return httpx.Response(200, json={"items": items, "total": len(items)})
        if parts[0] == "products":
            return httpx.Response(200, json={"product_id": parts[1]})
        if path == "/v1/events":
            self.events.extend(body["events"])
            return httpx.Response(202, json={"accepted": len(body["events"])})
        if parts[0] == "carts":
            return self.cart(method, parts[1:], body, who)
        if path == "/v1/checkout":
            key = request.headers["idempotency-key"]
            replayed = key in self.replies
            if not replayed:
                self.replies[key] = self.checkout(body, who)
            status, reply = self.replies[key]
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return httpx.Response(status, json=reply, headers=headers)
        if parts[0] == "orders" and method == "GET":
            return httpx.Response(200, json=self.orders[parts[1]])
        if parts[0] == "orders":
            order = self.orders[parts[1]]
            if order["status"] == "cancelled":
                return problem(409, "illegal_transition")
            order["status"] = "cancelled"
            for sku, qty in order["lines"].items():
                self.stock[sku] += qty
            return httpx.Response(200, json=order)
        return problem(404, "no_route")

    def cart(self, method: str, parts: list[str], body: Any, who: str | None) -> httpx.Response:
        if not parts:
            if who and who in self.cart_of:
                return httpx.Response(200, json={"cart_id": self.cart_of[who]})
            cart_id = self.new("cart")
            self.carts[cart_id] = {"lines": {}, "customer": who}
            if who:
                self.cart_of[who] = cart_id
            return httpx.Response(201, json={"cart_id": cart_id})
        lines: dict[str, int] = self.carts[parts[0]]["lines"]
        if method == "GET":
            return httpx.Response(200, json={"lines": [{"sku": s} for s in lines]})
        if method == "DELETE":
            return httpx.Response(200 if lines.pop(parts[2], None) else 404, json={})
        sku = body.get("sku") or parts[2]
        wanted = body["quantity"] + (lines.get(sku, 0) if method == "POST" else 0)
        if wanted > self.stock[sku]:
            return problem(409, "insufficient_stock", sku=sku)
        lines[sku] = wanted
        return httpx.Response(201 if method == "POST" else 200, json={"lines": []})

    def checkout(self, body: Any, who: str | None) -> tuple[int, dict[str, Any]]:
        cart = self.carts[body["cart_id"]]
        if body["payment_method"]["card"]["number"] != CARDS["ok"]:
            return 402, {"status": 402, "code": "card_declined", "detail": "declined"}
        short = [sku for sku, qty in cart["lines"].items() if qty > self.stock[sku]]
        if short:
            return 409, {"status": 409, "code": "insufficient_stock", "skus": short}
        if not cart["lines"]:
            if cart.get("last_order"):  # as the real checkout answers a bought cart
                return 422, {
                    "status": 422,
                    "code": "invalid_cart",
                    "reason": "already_checked_out",
                    "order_id": cart["last_order"],
                }
            return 422, {"status": 422, "code": "cart_empty"}
        for sku, qty in cart["lines"].items():
            self.stock[sku] -= qty
        order_id = self.new("ord")
        self.orders[order_id] = {
            "order_id": order_id,
            "status": "paid",
            "customer": who,
            "lines": dict(cart["lines"]),
        }
        cart["lines"] = {}
        cart["last_order"] = order_id
        return 201, {"order_id": order_id}


def simulate(shop: FakeShop, **config: Any) -> SimulationReport:
    settings = {"users": 12, "rate": 200.0, "duration": 0.6, "seed": 3, "workers": 1, **config}
    return run_simulation(
        "http://souk.test",
        shop.shop,
        SimulationConfig(**settings),
        show_progress=False,
        tag="t",
        transport=httpx.MockTransport(shop),
    )


def counts(report: SimulationReport) -> dict[str, Any]:
    """Everything but timings."""
    return {
        name: value
        for name, value in vars(report).items()
        if name not in ("latencies_ms", "elapsed_s")
    }


def test_a_run_places_orders_and_counts_what_happened() -> None:
    shop = FakeShop(catalog())
    report = simulate(shop)
    assert report.ok, report.samples
    assert report.sessions == report.sessions_planned > 80
    assert report.registrations == len(shop.customers) <= 12
    assert report.checkouts_succeeded == len(shop.orders) == len(report.orders) > 0
    assert report.cancels == sum(o["status"] == "cancelled" for o in shop.orders.values()) > 0
    assert report.checkouts_declined > 0 and report.idempotent_replays > 0
    assert report.second_tabs_refused > 0  # bought carts checked out again: refused
    assert report.checkouts_out_of_stock + report.items_refused > 0  # 5 units per SKU
    assert report.events_sent == len(shop.events)
    assert {e["type"] for e in shop.events} >= {"product.viewed", "search.performed"}
    assert report.cart_merges > 0 and report.carts_abandoned > 0
    assert all(units >= 0 for units in shop.stock.values())
    assert report.fraud_sessions == len(report.fraud_labels) > 0
    assert report.fraud_orders() <= set(shop.orders)
    assert all(
        shop.orders[o]["customer"] in report.fraud_customers() for o in report.fraud_orders()
    )
    assert "POST /v1/checkout" in report.latencies_ms
    assert report.latency("POST /v1/checkout")[1] >= report.latency("POST /v1/checkout")[0]


def test_the_same_seed_replays_the_same_run() -> None:
    first = simulate(FakeShop(catalog()))
    second = simulate(FakeShop(catalog()))
    assert counts(first) == counts(second)
    third = simulate(FakeShop(catalog()), seed=4)
    assert counts(third) != counts(first)


def test_server_errors_are_counted_and_fail_the_run() -> None:
    shop = FakeShop(catalog(stock=50), fail_path="/v1/events")
    report = simulate(shop, duration=0.2)
    assert report.five_xx > 0 and report.http_errors[500] == report.five_xx
    assert report.sessions_aborted > 0 and not report.ok
    assert any("POST /v1/events → 500" in key for key in report.unexpected)


def test_unreachable_server_is_a_transport_error_not_a_crash() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    report = run_simulation(
        "http://souk.test",
        catalog(),
        SimulationConfig(users=3, rate=50, duration=0.1, workers=2),
        show_progress=False,
        transport=httpx.MockTransport(refuse),
    )
    assert report.transport_errors == report.sessions_aborted == report.sessions_planned
    assert not report.ok and report.samples


def listed(product_id: str, status: str = "active", **prices: int) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "seller_id": "sel_1",
        "title": product_id,
        "category_id": "cat_a",
        "status": status,
        "variants": [
            {"sku": f"{product_id}-1", "prices": prices or {"EUR": 1, "USD": 1, "INR": 1}}
        ],
    }


def test_discovery_shops_active_products_priced_in_every_currency_across_pages() -> None:
    pages = {
        "1": {
            "items": [listed("p1"), listed("p2", EUR=199), listed("p3", status="archived")],
            "has_next": True,
        },
        "2": {"items": [listed("p4")], "has_next": False},
    }

    def products(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/products"
        return httpx.Response(200, json=pages[request.url.params["page"]])

    found = discover_catalog("http://souk.test", seed=1, transport=httpx.MockTransport(products))
    assert found is not None
    assert sorted(p.product_id for p in found.products) == ["p1", "p4"]
    assert found.products[0].weight > found.products[1].weight
    empty = discover_catalog(
        "http://souk.test",
        transport=httpx.MockTransport(
            lambda _r: httpx.Response(200, json={"items": [], "has_next": False})
        ),
    )
    assert empty is None
