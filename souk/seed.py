"""Seeding a catalog through the public HTTP API: sellers approved by an admin, products, stock.

Everything goes through the endpoints a real seller and a real admin use, so seeding exercises
the purchase path and every change reaches the outbox. The shapes (sellers, categories, brands,
log-normal prices, 1 to 3 colour variants) come from ``souk.synthetic``; what is added here is the
API calls, prices in every storefront currency, stock per warehouse with some SKUs scarce on
purpose (so stock-outs happen), and Zipf popularity weights for the shopper simulation.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from souk.synthetic import CATEGORIES, SyntheticWorld
from transactional.shared.errors import SoukError
from transactional.shared.regions import REGION_CURRENCY

# The warehouses the inventory slice seeds, one per region.
REGION_WAREHOUSE: dict[str, str] = {"eu": "wh_eu_1", "us": "wh_us_1", "in": "wh_in_1"}
# Storefront prices are set per currency by the seller; these are the seller's rough rates.
UNITS_PER_EUR: dict[str, float] = {"EUR": 1.0, "USD": 1.08, "INR": 90.0}
SEED_PASSWORD = "seeded-seller-password"  # synthetic accounts on a local stack

# (stage, done, total): called as seeding advances, e.g. to drive a progress bar.
SeedProgress = Callable[[str, int, int], None]


class SeedFailed(SoukError):
    """The API refused a seeding call; the message names the call and the problem."""


@dataclass(frozen=True)
class CatalogPlan:
    """How big the seeded catalog is and how its stock is spread."""

    sellers: int = 4
    products: int = 40
    stock: tuple[int, int] = (20, 80)  # units in a stocked warehouse
    scarce_share: float = 0.15  # SKUs with only a few units, in one warehouse
    scarce_units: tuple[int, int] = (1, 3)
    scarce_top_products: int = 2  # the most popular products get a scarce SKU too
    second_warehouse_share: float = 0.5  # SKUs also stocked in another region
    zipf_exponent: float = 1.1
    workers: int = 8  # concurrent API calls while seeding

    def __post_init__(self) -> None:
        if self.sellers < 1 or self.products < 1:
            raise ValueError("a catalog needs at least one seller and one product")
        if not 0 <= self.scarce_share <= 1 or not 0 <= self.second_warehouse_share <= 1:
            raise ValueError("shares are between 0 and 1")


@dataclass(frozen=True)
class SeededSku:
    """A sellable variant: its prices per currency and the units seeded per warehouse."""

    sku: str
    product_id: str
    prices: Mapping[str, int]
    stock: Mapping[str, int]
    scarce: bool = False

    @property
    def total_stock(self) -> int:
        """Units seeded across every warehouse."""
        return sum(self.stock.values())


@dataclass(frozen=True)
class SeededProduct:
    """A listed product with its SKUs and its share of shopper attention."""

    product_id: str
    seller_id: str
    title: str
    category_id: str
    skus: tuple[SeededSku, ...]
    weight: float = 1.0

    def price(self, currency: str) -> int:
        """The price of the first variant in ``currency`` (minor units; 0 if unpriced)."""
        return self.skus[0].prices.get(currency, 0) if self.skus else 0


@dataclass(frozen=True)
class SeededSeller:
    """An approved seller and the customer account that operates it."""

    seller_id: str
    customer_id: str
    email: str
    region: str


@dataclass
class SeededCatalog:
    """What the shopper simulation shops from: products by popularity, SKUs with their stock."""

    products: list[SeededProduct]
    sellers: list[SeededSeller] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.products:
            raise ValueError("an empty catalog cannot be shopped")
        self._by_sku = {sku.sku: sku for product in self.products for sku in product.skus}
        self._by_id = {product.product_id: product for product in self.products}
        self.cumulative_weights = list(itertools.accumulate(p.weight for p in self.products))

    def sku(self, sku: str) -> SeededSku:
        """A seeded SKU by code (KeyError if unknown)."""
        return self._by_sku[sku]

    def product(self, product_id: str) -> SeededProduct:
        """A seeded product by id (KeyError if unknown)."""
        return self._by_id[product_id]

    @property
    def skus(self) -> list[SeededSku]:
        """Every SKU of every product."""
        return list(self._by_sku.values())

    def initial_stock(self) -> dict[str, int]:
        """Units seeded per SKU, across warehouses."""
        return {sku.sku: sku.total_stock for sku in self._by_sku.values()}

    def pick(self, rng: random.Random) -> SeededProduct:
        """A product drawn by popularity (Zipf over the seeded ranks)."""
        return rng.choices(self.products, cum_weights=self.cumulative_weights)[0]

    def high_value(self, currency: str, share: float = 0.15) -> list[SeededProduct]:
        """The most expensive ``share`` of products in ``currency`` (at least one)."""
        ranked = sorted(self.products, key=lambda p: (-p.price(currency), p.product_id))
        return ranked[: max(1, math.ceil(len(ranked) * share))]


def zipf_weights(n: int, exponent: float = 1.1) -> list[float]:
    """Weights of ranks 1..n under Zipf's law (rank r gets 1/r**exponent)."""
    return [1.0 / (rank + 1) ** exponent for rank in range(n)]


def storefront_prices(amount_minor: int, currency: str) -> dict[str, int]:
    """A price in every storefront currency, each ending in .99 (integer minor units)."""
    eur = amount_minor / UNITS_PER_EUR.get(currency, 1.0)
    return {code: _charm(eur * rate) for code, rate in UNITS_PER_EUR.items()}


def _charm(amount_minor: float) -> int:
    # 12.34 → 12.99: the major units kept, .99 cents; never below 0.99.
    return max(99, int(amount_minor) // 100 * 100 + 99)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def expect(response: httpx.Response, what: str, *statuses: int) -> Any:
    """The JSON body of ``response`` if its status is one of ``statuses``; else SeedFailed."""
    if response.status_code not in statuses:
        raise SeedFailed(f"{what}: HTTP {response.status_code}: {_problem_text(response)}")
    return response.json() if response.content else None


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return f"{body.get('code', '')} {body.get('detail', '')} {body.get('errors', '')}".strip()
    return str(body)[:300]


def category_leaves(tree: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The leaf categories of a ``GET /v1/categories`` tree (nodes without children)."""
    leaves: list[Mapping[str, Any]] = []
    for node in tree:
        children = node.get("children") or []
        if children:
            leaves.extend(category_leaves(children))
        else:
            leaves.append(node)
    return leaves


def match_categories(leaves: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Map each synthetic category to a seeded leaf: same id, else same leaf name, else spread."""
    if not leaves:
        raise SeedFailed("GET /v1/categories returned no categories: run the migrations first")
    by_id = {str(leaf["category_id"]): str(leaf["category_id"]) for leaf in leaves}
    by_name = {str(leaf.get("name", "")).lower(): str(leaf["category_id"]) for leaf in leaves}
    ordered = sorted(by_id)
    mapping = {}
    for index, (synthetic_id, (path, *_)) in enumerate(sorted(CATEGORIES.items())):
        name = path[-1].lower()
        mapping[synthetic_id] = (
            by_id.get(synthetic_id)
            or by_name.get(name)
            or by_name.get(_CATEGORY_ALIASES.get(name, ""))
            or ordered[index % len(ordered)]
        )
    return mapping


# Synthetic leaf names the seeded taxonomy calls differently.
_CATEGORY_ALIASES = {"kitchen": "cookware", "apparel": "women's clothing"}


@dataclass
class _PlannedSku:
    sku: str
    attributes: dict[str, str]
    prices: dict[str, int]
    stock: dict[str, int]
    scarce: bool


@dataclass
class _PlannedProduct:
    synthetic_seller: str
    body: dict[str, Any]
    skus: list[_PlannedSku]
    rank: int  # popularity rank, 0 = most viewed


def _plan_products(
    world: SyntheticWorld, plan: CatalogPlan, categories: Mapping[str, str], tag: str
) -> tuple[list[Any], list[_PlannedProduct]]:
    """Every decision of the seed, made up front so concurrency cannot reorder the dice."""
    sellers = world.sellers(plan.sellers)
    products = world.products(plan.products, sellers)
    ranks = list(range(len(products)))
    world.rng.shuffle(ranks)  # popularity independent of creation order
    regions = [r for r in world.regions if r in REGION_WAREHOUSE] or list(REGION_WAREHOUSE)
    planned: list[_PlannedProduct] = []
    for serial, (product, rank) in enumerate(zip(products, ranks, strict=True)):
        payload = product.payload
        home = product.region if product.region in REGION_WAREHOUSE else regions[0]
        skus = []
        for position, variant in enumerate(payload.variants):
            scarce = world.rng.random() < plan.scarce_share or (
                rank < plan.scarce_top_products and position == 0
            )
            stock: dict[str, int] = {}
            if scarce:
                stock[REGION_WAREHOUSE[home]] = world.rng.randint(*plan.scarce_units)
            else:
                stock[REGION_WAREHOUSE[home]] = world.rng.randint(*plan.stock)
                others = [r for r in regions if r != home]
                if others and world.rng.random() < plan.second_warehouse_share:
                    stock[REGION_WAREHOUSE[world.rng.choice(others)]] = world.rng.randint(
                        *plan.stock
                    )
            colour = variant.attributes.get("colour", str(position))
            skus.append(
                _PlannedSku(
                    sku=f"SKU-{tag}-{serial:05d}-{colour}".upper(),
                    attributes=dict(variant.attributes),
                    prices=storefront_prices(variant.price.amount_minor, variant.price.currency),
                    stock=stock,
                    scarce=scarce,
                )
            )
        body = {
            "title": payload.title,
            "description": payload.description,
            "brand": payload.brand,
            "category_id": categories[payload.category_id],
            "attributes": {"prime_eligible": "yes" if payload.prime_eligible else "no"},
            "variants": [
                {"sku": s.sku, "attributes": s.attributes, "prices": s.prices} for s in skus
            ],
            "images": [],
        }
        planned.append(_PlannedProduct(payload.seller_id, body, skus, rank))
    return sellers, planned


class _Ticker:
    """Thread-safe progress counting for one stage."""

    def __init__(self, progress: SeedProgress | None, stage: str, total: int) -> None:
        self._progress = progress
        self._stage = stage
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        self.advance(0)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done += n
            if self._progress is not None:
                self._progress(self._stage, self._done, self._total)


def _parallel(workers: int, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="seed") as pool:
        return list(pool.map(fn, items))


def seed_catalog(
    base_url: str,
    admin_token: str,
    world: SyntheticWorld,
    plan: CatalogPlan | None = None,
    progress: SeedProgress | None = None,
    *,
    tag: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SeededCatalog:
    """Create approved sellers, their products and stock through the API; return the catalog.

    ``tag`` makes emails and SKUs unique on a database that already holds an earlier seed
    (random unless given); every other choice follows the world's seed.
    """
    plan = plan or CatalogPlan()
    tag = tag or secrets.token_hex(3)
    with httpx.Client(base_url=base_url, timeout=60.0, transport=transport) as client:
        leaves = category_leaves(expect(client.get("/v1/categories"), "GET /v1/categories", 200))
        categories = match_categories(leaves)
        synthetic_sellers, planned = _plan_products(world, plan, categories, tag)

        seller_ticks = _Ticker(progress, "sellers", len(synthetic_sellers))

        def onboard(indexed: tuple[int, Any]) -> tuple[SeededSeller, str]:
            index, seller = indexed
            seeded, token = _onboard_seller(
                client, admin_token, index, seller.payload, tag, categories
            )
            seller_ticks.advance()
            return seeded, token

        onboarded = _parallel(plan.workers, onboard, enumerate(synthetic_sellers))
        accounts = {
            synthetic.payload.seller_id: pair
            for synthetic, pair in zip(synthetic_sellers, onboarded, strict=True)
        }

        product_ticks = _Ticker(progress, "products", len(planned))

        def list_product(item: _PlannedProduct) -> SeededProduct:
            seller, token = accounts[item.synthetic_seller]
            created = expect(
                client.post("/v1/products", json=item.body, headers=bearer(token)),
                f"POST /v1/products ({item.body['title']})",
                200,
                201,
            )
            product_id = str(created["product_id"])
            product_ticks.advance()
            return SeededProduct(
                product_id=product_id,
                seller_id=seller.seller_id,
                title=str(item.body["title"]),
                category_id=str(item.body["category_id"]),
                skus=tuple(
                    SeededSku(s.sku, product_id, s.prices, s.stock, s.scarce) for s in item.skus
                ),
            )

        listed = _parallel(plan.workers, list_product, planned)

        puts = [
            (s.sku, wh, qty) for item in planned for s in item.skus for wh, qty in s.stock.items()
        ]
        stock_ticks = _Ticker(progress, "stock", len(puts))

        def put_stock(entry: tuple[str, str, int]) -> None:
            sku, warehouse, on_hand = entry
            expect(
                client.put(
                    f"/v1/inventory/{sku}/warehouses/{warehouse}",
                    json={"on_hand": on_hand, "reason": "receipt"},
                    headers=bearer(admin_token),
                ),
                f"PUT /v1/inventory/{sku}/warehouses/{warehouse}",
                200,
                201,
            )
            stock_ticks.advance()

        _parallel(plan.workers, put_stock, puts)

    weights = zipf_weights(len(planned), plan.zipf_exponent)
    products = [
        SeededProduct(p.product_id, p.seller_id, p.title, p.category_id, p.skus, weights[item.rank])
        for p, item in sorted(zip(listed, planned, strict=True), key=lambda pair: pair[1].rank)
    ]
    return SeededCatalog(products, [seller for seller, _ in onboarded])


def _onboard_seller(
    client: httpx.Client,
    admin_token: str,
    index: int,
    applied: Any,
    tag: str,
    categories: Mapping[str, str],
) -> tuple[SeededSeller, str]:
    """Register the seller's account, apply with documents, have the admin approve KYC."""
    region = applied.region if applied.region in REGION_CURRENCY else "eu"
    email = f"seller-{tag}-{index}@seed.souk.dev"
    expect(
        client.post(
            "/v1/customers",
            json={
                "email": email,
                "password": SEED_PASSWORD,
                "name": applied.display_name,
                "region": region,
                "locale": "en",
                "currency": REGION_CURRENCY[region],
                "country": applied.country,
            },
        ),
        f"POST /v1/customers ({email})",
        201,
    )
    signed_in = expect(
        client.post("/v1/auth/token", json={"email": email, "password": SEED_PASSWORD}),
        f"POST /v1/auth/token ({email})",
        200,
    )
    token = str(signed_in["access_token"])
    seller = expect(
        client.post(
            "/v1/sellers",
            json={
                "legal_name": f"{applied.display_name} {tag.upper()} Ltd",
                "display_name": applied.display_name,
                "business_type": applied.business_type,
                "country": applied.country,
                "region": region,
                "documents": [
                    {"kind": "tax_id", "reference": f"TAX-{tag}-{index:04d}"},
                    {"kind": "bank_account", "reference": f"IBAN-{tag}-{index:04d}"},
                ],
                "categories": sorted({categories[c] for c in applied.categories}),
            },
            headers=bearer(token),
        ),
        f"POST /v1/sellers ({email})",
        200,
        201,
    )
    seller_id = str(seller["seller_id"])
    expect(
        client.post(
            f"/v1/admin/sellers/{seller_id}/kyc",
            json={"decision": "approved", "reason": "documents verified by the seed"},
            headers=bearer(admin_token),
        ),
        f"POST /v1/admin/sellers/{seller_id}/kyc",
        200,
        201,
    )
    return SeededSeller(seller_id, str(signed_in["customer_id"]), email, region), token


def discover_catalog(
    base_url: str,
    *,
    seed: int = 7,
    currencies: Iterable[str] = tuple(REGION_CURRENCY.values()),
    page_size: int = 100,
    max_products: int = 2000,
    transport: httpx.BaseTransport | None = None,
) -> SeededCatalog | None:
    """The active products a running server lists, popularity ranks drawn from ``seed``.

    Only SKUs priced in every one of ``currencies`` are kept (every simulated shopper must be
    able to buy them); stock is not known this way. None when nothing qualifies.
    """
    wanted = set(currencies)
    found: list[SeededProduct] = []
    with httpx.Client(base_url=base_url, timeout=60.0, transport=transport) as client:
        for page in itertools.count(1):
            body = expect(
                client.get("/v1/products", params={"page": page, "page_size": page_size}),
                "GET /v1/products",
                200,
            )
            for item in body["items"]:
                product = _product_of(item, wanted)
                if product is not None:
                    found.append(product)
            if not body["has_next"] or len(found) >= max_products:
                break
    if not found:
        return None
    ranks = list(range(len(found)))
    random.Random(seed).shuffle(ranks)
    weights = zipf_weights(len(found))
    ordered = sorted(zip(ranks, found, strict=True), key=lambda pair: pair[0])
    return SeededCatalog(
        [
            SeededProduct(p.product_id, p.seller_id, p.title, p.category_id, p.skus, weights[r])
            for r, p in ordered
        ]
    )


def _product_of(item: Mapping[str, Any], currencies: set[str]) -> SeededProduct | None:
    """A listed product with its SKUs priced in every wanted currency, if it has any."""
    product_id = str(item["product_id"])
    skus = tuple(
        SeededSku(str(v["sku"]), product_id, dict(v["prices"]), {})
        for v in item["variants"]
        if currencies <= set(v["prices"])
    )
    if not skus or item["status"] != "active":
        return None
    return SeededProduct(
        product_id=product_id,
        seller_id=str(item["seller_id"]),
        title=str(item["title"]),
        category_id=str(item["category_id"]),
        skus=skus,
    )


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
