"""The simulation runner against an in-memory shop (httpx MockTransport): flows and counting."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
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
from souk.simulation import FRAUD_KINDS, SimulationConfig, SimulationReport, run_simulation
from souk.simulation.runner import DEVICE_HEADER, FORWARDED_HEADER, TEST_DECLINES
from transactional.shared.regions import region_of_ip


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


@dataclass(frozen=True)
class Attempt:
    """A checkout the shop ran (not a replay): who, from where, with which card."""

    session: int
    customer: str
    device: str
    address: str
    card: tuple[str, int, int]  # what the checkout's instrument id is derived from
    status: int


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
    region_of: dict[str, str] = field(default_factory=dict)  # customer -> home region
    # (device, client address) of every request, and every checkout attempt.
    origins: list[tuple[str | None, str | None]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    # Search finds the products of these categories only (the others: zero results).
    indexed_categories: frozenset[str] = frozenset({"cat_a"})
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)  # search id -> answer
    served: dict[str, dict[str, Any]] = field(default_factory=dict)  # recommendation id -> list
    widget_calls: list[tuple[str, str | None]] = field(default_factory=list)  # (path, customer)
    added_in_sessions: list[str | None] = field(default_factory=list)  # add-to-cart sessions

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
        device = request.headers.get(DEVICE_HEADER)
        address = request.headers.get(FORWARDED_HEADER)
        self.origins.append((device, address))
        if path == self.fail_path:
            return httpx.Response(500, json={"status": 500})
        parts = path.strip("/").split("/")[1:]
        if (method, path) == ("POST", "/v1/customers"):
            if body["email"] in self.customers:
                return problem(409, "email_taken")
            self.customers[body["email"]] = self.new("cus")
            self.region_of[self.customers[body["email"]]] = body["region"]
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
            product = self.shop.product(parts[1])
            variants = [{"sku": sku.sku, "prices": dict(sku.prices)} for sku in product.skus]
            return httpx.Response(200, json={"product_id": parts[1], "variants": variants})
        if path == "/v1/search":
            return self.search(request.url.params)
        if parts[0] in ("recommendations", "feed"):
            return self.recommend(path, request.url.params, who)
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
                card = body["payment_method"]["card"]
                self.attempts.append(
                    Attempt(
                        session=int(key.split("-")[2]),
                        customer=who or "",
                        device=device or "",
                        address=address or "",
                        card=(card["number"], card["exp_month"], card["exp_year"]),
                        status=self.replies[key][0],
                    )
                )
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

    def search(self, params: httpx.QueryParams) -> httpx.Response:
        category = params.get("category")
        found = [
            p.product_id
            for p in self.shop.products
            if p.category_id == category and category in self.indexed_categories
        ]
        size = int(params.get("page_size", "20"))
        answer = {
            "search_id": self.new("srch"),
            "query": params.get("q"),
            "total": len(found),
            "hits": [{"product_id": product_id} for product_id in found[:size]],
            "index_versions": {"eu": "v3", "us": None},
            "took_ms": 1.4,
        }
        self.searches[answer["search_id"]] = answer
        return httpx.Response(200, json=answer)

    def recommend(self, path: str, params: httpx.QueryParams, who: str | None) -> httpx.Response:
        self.widget_calls.append((path, who))
        limit = int(params["limit"])
        if path.endswith("/for-you"):
            if who is None:
                return problem(401, "unauthenticated")
            model, version = "als", "v1"
            picks = [p.product_id for p in self.shop.products][:limit]
        elif "/similar/" in path:
            model, version = "item_vectors", "v2"
            anchor = self.shop.product(path.rsplit("/", 1)[1])
            # Nothing similar to cat_b products: an empty list (no widget).
            picks = [
                p.product_id
                for p in self.shop.products
                if p.category_id == anchor.category_id == "cat_a" and p != anchor
            ][: limit - 1]
        else:
            model, version = "feed", "fallback"
            picks = [p.product_id for p in self.shop.products][-limit:]
        served = {
            "recommendation_id": self.new("rec"),
            "placement": "home",
            "model": model,
            "model_version": version,
            "items": [{"product_id": p, "position": i} for i, p in enumerate(picks)],
            "session_id": params.get("session_id"),
        }
        if picks:  # as the server: an empty list is not served
            self.served[served["recommendation_id"]] = served
        return httpx.Response(200, json=served)

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
        if method == "POST":
            self.added_in_sessions.append(body.get("session_id"))
        wanted = body["quantity"] + (lines.get(sku, 0) if method == "POST" else 0)
        if wanted > self.stock[sku]:
            return problem(409, "insufficient_stock", sku=sku)
        lines[sku] = wanted
        return httpx.Response(201 if method == "POST" else 200, json={"lines": []})

    def checkout(self, body: Any, who: str | None) -> tuple[int, dict[str, Any]]:
        cart = self.carts[body["cart_id"]]
        # As the sandbox: its test numbers decline, any other (Luhn-valid) number pays.
        if body["payment_method"]["card"]["number"] in TEST_DECLINES:
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
    # Replays and cancels are rare by default (1 checkout in 10, 6 %): a quarter of each
    # makes some certain in the ~20 checkouts of this run, whatever the seed draws.
    report = simulate(shop, replay_share=0.25, cancel_share=0.25)
    assert report.ok, report.samples
    assert report.sessions == report.sessions_planned > 80
    # 12 shoppers, and the throwaway accounts some fraud sessions open.
    assert report.registrations == len(shop.customers) <= 12 + report.fraud_sessions
    assert report.checkouts_succeeded == len(shop.orders) == len(report.orders) > 0
    assert report.cancels == sum(o["status"] == "cancelled" for o in shop.orders.values()) > 0
    assert report.checkouts_declined > 0 and report.idempotent_replays > 0
    assert report.second_tabs_refused > 0  # bought carts checked out again: refused
    assert report.checkouts_out_of_stock + report.items_refused > 0  # 5 units per SKU
    assert report.events_sent == len(shop.events)
    assert {e["type"] for e in shop.events} >= {"product.viewed", "search.performed"}
    # Cart additions name their storefront session, the one its views carry (funnels).
    viewed_in = {e["payload"]["session_id"] for e in shop.events if e["type"] == "product.viewed"}
    assert shop.added_in_sessions and set(shop.added_in_sessions) <= viewed_in
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


# -- devices, addresses and cards ----------------------------------------------------------------


def test_every_request_says_which_device_and_address_it_comes_from() -> None:
    shop = FakeShop(catalog())
    report = simulate(shop)
    assert report.ok, report.samples
    assert shop.origins and all(device and address for device, address in shop.origins)
    assert all(a.device.startswith("dev-t-") for a in shop.attempts)


def test_honest_shoppers_use_one_device_their_own_cards_and_their_home_address() -> None:
    shop = FakeShop(catalog(stock=50))
    report = simulate(shop, users=30, duration=1.0, fraud_share=0.1)
    assert report.ok, report.samples
    fraud = report.fraud_customers()
    ip_regions = SimulationConfig().ip_regions
    honest = [a for a in shop.attempts if a.customer not in fraud]
    assert honest and {a.status for a in honest} >= {201, 402}
    by_device: dict[str, set[str]] = {}
    cards_of: dict[str, set[tuple[str, int, int]]] = {}
    customers_of: dict[tuple[str, int, int], set[str]] = {}
    for attempt in honest:
        by_device.setdefault(attempt.device, set()).add(attempt.customer)
        cards_of.setdefault(attempt.device, set()).add(attempt.card)
        customers_of.setdefault(attempt.card, set()).add(attempt.customer)
        assert region_of_ip(attempt.address, ip_regions) == shop.region_of[attempt.customer]
    assert all(len(customers) == 1 for customers in by_device.values())  # one device each
    assert all(len(cards) <= 2 for cards in cards_of.values())  # the good one, the failing one
    assert all(len(customers) == 1 for customers in customers_of.values())  # never shared
    # Nobody honest shares an address or a device with anybody else.
    assert len({a.address for a in honest}) == len({a.customer for a in honest})


def test_fraud_sessions_do_what_their_labels_say() -> None:
    shop = FakeShop(catalog(stock=200))
    report = simulate(shop, users=20, duration=1.5, fraud_share=0.4, seed=5)
    assert report.ok, report.samples
    ip_regions = SimulationConfig().ip_regions
    labels = {label.session: label for label in report.fraud_labels}
    kinds = {kind for label in labels.values() for kind in label.kinds}
    assert kinds == set(FRAUD_KINDS)
    stolen: dict[tuple[str, int, int], set[str]] = {}
    for session, label in labels.items():
        attempts = [a for a in shop.attempts if a.session == session]
        if not attempts:
            continue  # nothing left in stock to buy
        assert {a.customer for a in attempts} == {label.customer_id}
        assert len({a.device for a in attempts}) == 1  # one device per session
        (address,) = {a.address for a in attempts}
        region = shop.region_of[label.customer_id]
        assert (region_of_ip(address, ip_regions) != region) == ("foreign_ip" in label.kinds)
        cards = [a.card for a in attempts]
        if "card_testing" in label.kinds:
            declined = [a.card for a in attempts if a.status == 402]
            assert len(set(declined)) >= 3 and len(set(cards)) >= 4  # several cards, one device
        if "shared_card" in label.kinds:
            paid = [a.card for a in attempts if a.status == 201]
            for card in paid:
                stolen.setdefault(card, set()).add(label.customer_id)
    # Every shared-card session paid with the one stolen card, each from another account.
    assert len(stolen) == 1
    (accounts,) = stolen.values()
    assert len(accounts) >= 2
    # Orders of fraud sessions are labelled with the account that placed them.
    for order_id in report.fraud_orders():
        assert shop.orders[order_id]["customer"] in report.fraud_customers()


# -- searches and recommendations through the serving endpoints ----------------------------------


def of_type(shop: FakeShop, event_type: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in shop.events if e["type"] == event_type]


def test_searches_send_the_servers_search_ids_and_views_follow_its_hits() -> None:
    shop = FakeShop(catalog(stock=50))
    report = simulate(shop, search_share=0.9, fraud_share=0.0)
    assert report.ok, report.samples
    performed = of_type(shop, "search.performed")
    assert len(performed) == len(shop.searches) == report.searches > 20
    for event in performed:
        answer = shop.searches[event["search_id"]]  # an id the server issued, none made up
        assert event["result_count"] == answer["total"]
        assert event["top_product_ids"] == [h["product_id"] for h in answer["hits"]]
        assert event["index_version"] == "eu:v3,us:-"
        assert event["query"] == answer["query"] and event["latency_ms"] == 1
    found = [e for e in performed if e["result_count"]]
    assert report.searches_with_results == len(found) > 0
    assert report.searches_zero_results == len(performed) - len(found) > 0
    assert report.zero_result_share == report.searches_zero_results / report.searches
    from_search = [v for v in of_type(shop, "product.viewed") if v["source"] == "search"]
    assert len(from_search) == report.views_from_search_hits > 0
    for view in from_search:
        hits = shop.searches[view["search_id"]]["hits"]
        assert hits[view["position"]]["product_id"] == view["product_id"]
        # The SKU is one of the viewed product's own.
        assert view["sku"] in {s.sku for s in shop.shop.product(view["product_id"]).skus}
    # A search that found nothing: the shopper browsed the category instead (no search id).
    zero = {e["session_id"] for e in performed if not e["result_count"]}
    assert all(
        v["source"] != "search" for v in of_type(shop, "product.viewed") if v["session_id"] in zero
    )


def test_clicks_carry_the_served_recommendation_ids_and_no_list_is_self_reported() -> None:
    shop = FakeShop(catalog(stock=50))
    report = simulate(shop, recommendation_share=0.9, click_share=0.7, fraud_share=0.0)
    assert report.ok, report.samples
    assert not of_type(shop, "recommendation.served")  # the server reports what it served
    clicks = of_type(shop, "recommendation.clicked")
    assert len(clicks) == report.recommendations_clicked > 10
    for click in clicks:
        served = shop.served[click["recommendation_id"]]
        assert served["items"][click["position"]]["product_id"] == click["product_id"]
        assert served["session_id"] == click["session_id"]
    views = [v for v in of_type(shop, "product.viewed") if v["source"] == "recommendation"]
    assert [(v["recommendation_id"], v["product_id"]) for v in views] == [
        (c["recommendation_id"], c["product_id"]) for c in clicks
    ]
    # for-you only with a token; guests get lists similar to what they viewed.
    paths = {
        path.split("/")[-1] if "/similar/" not in path else "similar"
        for path, _ in shop.widget_calls
    }
    assert paths >= {"for-you", "similar"}
    assert all(who for path, who in shop.widget_calls if path.endswith("/for-you"))
    # Lists per model version as the server named them; empty lists show no widget.
    by_version = Counter(f"{s['model']} {s['model_version']}" for s in shop.served.values())
    assert report.recommendation_lists == by_version
    assert report.recommendations_served == len(shop.served)
    assert report.recommendations_empty == len(shop.widget_calls) - len(shop.served) > 0


def test_plans_search_with_words_that_name_products_of_their_category() -> None:
    from souk.simulation.model import ShopperModel
    from souk.synthetic import SEARCH_TERMS

    shop = SeededCatalog(
        [
            SeededProduct(
                f"prd_{i}",
                "sel_1",
                title,
                category,
                (SeededSku(f"SKU-{i}", f"prd_{i}", storefront_prices(999, "EUR"), {"wh": 5}),),
                1.0,
            )
            for i, (title, category) in enumerate(
                [
                    ("Tefala Pro Kettle", "cat_kitchen"),
                    ("Nokio Max Phone Case", "cat_phones"),
                    ("Samsong Lite Charger", "cat_phones"),
                    ("Thing", "cat_other"),
                ]
            )
        ]
    )
    model = ShopperModel(shop, SimulationConfig(users=5, seed=3, fraud_share=0.0))
    queries: dict[str, set[str]] = {}
    for plan in model.sessions(400):
        if plan.search_query is not None and plan.search_category is not None:
            queries.setdefault(plan.search_category, set()).add(plan.search_query)
    assert queries["cat_kitchen"] == {"kettle"}
    assert queries["cat_phones"] == {"phone", "charger"}
    assert queries["cat_other"] <= set(SEARCH_TERMS) and len(queries["cat_other"]) > 1
