"""Seeded synthetic e-commerce data: sellers, a categorised catalog, customers, shopper sessions.

No e-commerce data set installs offline, so the demo and benchmarks generate one. Product
popularity is Zipf-distributed and prices log-normal per category, which is what makes the
downstream trending and recommendation signals look like real traffic. Same seed, same data.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from schemas.behaviour import ProductViewed, SearchPerformed
from schemas.carts import CartItemAdded
from schemas.catalog import ProductCreated, ProductVariant
from schemas.common import Money
from schemas.customers import UserRegistered
from schemas.inventory import StockAdjusted
from schemas.sellers import SellerApplied

REGION_CURRENCY = {"eu": "EUR", "us": "USD", "in": "INR", "uk": "GBP", "jp": "JPY"}
REGION_COUNTRIES = {
    "eu": ["DE", "FR", "ES", "IT", "NL"],
    "us": ["US"],
    "in": ["IN"],
    "uk": ["GB"],
    "jp": ["JP"],
}
REGION_LOCALES = {
    "DE": "de-DE",
    "FR": "fr-FR",
    "ES": "es-ES",
    "IT": "it-IT",
    "NL": "nl-NL",
    "US": "en-US",
    "IN": "en-IN",
    "GB": "en-GB",
    "JP": "ja-JP",
}

# category id -> (path, brands, nouns, median price in major units)
CATEGORIES: dict[str, tuple[list[str], list[str], list[str], float]] = {
    "cat_phones": (
        ["Electronics", "Phones"],
        ["Nokio", "Samsong", "Pixelate"],
        ["Smartphone", "Phone Case", "Charger"],
        250.0,
    ),
    "cat_laptops": (
        ["Electronics", "Laptops"],
        ["Lenova", "Dellish", "Asos"],
        ["Ultrabook", "Gaming Laptop", "Chromebook"],
        900.0,
    ),
    "cat_audio": (
        ["Electronics", "Audio"],
        ["Sonyx", "Boze", "JBLoud"],
        ["Headphones", "Earbuds", "Speaker"],
        80.0,
    ),
    "cat_kitchen": (
        ["Home", "Kitchen"],
        ["Tefala", "Kitchenaid", "Ikeo"],
        ["Frying Pan", "Kettle", "Knife Set"],
        40.0,
    ),
    "cat_furniture": (
        ["Home", "Furniture"],
        ["Ikeo", "Hemnes", "Oakwood"],
        ["Desk", "Chair", "Bookshelf"],
        150.0,
    ),
    "cat_shoes": (
        ["Fashion", "Shoes"],
        ["Nikey", "Adidos", "Pumba"],
        ["Running Shoes", "Sneakers", "Boots"],
        90.0,
    ),
    "cat_apparel": (
        ["Fashion", "Apparel"],
        ["Levy", "Zarah", "Uniqlow"],
        ["T-Shirt", "Jeans", "Jacket"],
        35.0,
    ),
    "cat_books": (
        ["Books", "Fiction"],
        ["Penguinn", "Harper", "Vintage"],
        ["Novel", "Thriller", "Short Stories"],
        15.0,
    ),
    "cat_sports": (
        ["Sports", "Fitness"],
        ["Decathlan", "Garminn", "Fitbyte"],
        ["Yoga Mat", "Smartwatch", "Dumbbells"],
        45.0,
    ),
    "cat_beauty": (
        ["Beauty", "Skincare"],
        ["Lorael", "Niveo", "Clinique"],
        ["Moisturiser", "Sunscreen", "Serum"],
        20.0,
    ),
}
ADJECTIVES = ["Classic", "Pro", "Lite", "Max", "Eco", "Urban", "Sport", "Deluxe", "Mini", "Plus"]
COLOURS = ["black", "white", "blue", "red", "green", "grey"]
SEARCH_TERMS = [
    "phone",
    "laptop",
    "headphones",
    "kettle",
    "desk",
    "shoes",
    "jeans",
    "novel",
    "yoga mat",
    "sunscreen",
    "charger",
    "gaming",
    "running",
    "serum",
    "speaker",
]


@dataclass(frozen=True, slots=True)
class Seller:
    """A seller with its home region."""

    payload: SellerApplied


@dataclass(frozen=True, slots=True)
class Product:
    """A product, the region it is sold in and its opening stock per warehouse."""

    region: str
    payload: ProductCreated
    stock: list[StockAdjusted] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Customer:
    """A registered customer."""

    payload: UserRegistered


@dataclass(frozen=True, slots=True)
class SessionEvents:
    """One shopper visit: the events it produced, all keyed by its session or cart."""

    region: str
    session_id: str
    customer_id: str | None
    events: list[tuple[str, msgspec.Struct]]  # (event type, payload)


def warehouses(region: str) -> list[str]:
    """The warehouses of a region (two per region locally)."""
    return [f"wh_{region}_{n}" for n in (1, 2)]


class SyntheticWorld:
    """Generates one consistent, reproducible world for the given regions."""

    def __init__(self, regions: list[str], seed: int = 7) -> None:
        self.regions = regions
        self.rng = random.Random(seed)
        self._serial = 0

    def _id(self, prefix: str) -> str:
        # Deterministic ids (unlike uuid7) so the same seed yields the same world.
        self._serial += 1
        return f"{prefix}_{self.rng.getrandbits(40):010x}{self._serial:06d}"

    def sellers(self, n: int) -> list[Seller]:
        """Sellers spread over the regions."""
        out = []
        for i in range(n):
            region = self.regions[i % len(self.regions)]
            out.append(
                Seller(
                    SellerApplied(
                        seller_id=self._id("sel"),
                        display_name=f"{self.rng.choice(ADJECTIVES)} Traders {i + 1}",
                        business_type=self.rng.choice(["individual", "company"]),
                        country=self.rng.choice(REGION_COUNTRIES.get(region, ["US"])),
                        region=region,
                        categories=self.rng.sample(sorted(CATEGORIES), 3),
                    )
                )
            )
        return out

    def products(self, n: int, sellers: list[Seller]) -> list[Product]:
        """Products with variants, log-normal prices and opening stock in the seller's region."""
        out = []
        for _ in range(n):
            seller = self.rng.choice(sellers).payload
            category_id = self.rng.choice(seller.categories or sorted(CATEGORIES))
            path, brands, nouns, median = CATEGORIES[category_id]
            brand = self.rng.choice(brands)
            currency = REGION_CURRENCY.get(seller.region, "USD")
            scale = 90.0 if currency == "INR" else 1.0
            price_minor = int(math.exp(self.rng.gauss(math.log(median * scale), 0.5)) * 100)
            product_id = self._id("prd")
            variants = [
                ProductVariant(
                    sku=f"{product_id}-{colour}",
                    price=Money(amount_minor=price_minor, currency=currency),
                    attributes={"colour": colour},
                )
                for colour in self.rng.sample(COLOURS, self.rng.randint(1, 3))
            ]
            payload = ProductCreated(
                product_id=product_id,
                seller_id=seller.seller_id,
                product_version=1,
                title=f"{brand} {self.rng.choice(ADJECTIVES)} {self.rng.choice(nouns)}",
                description=f"A {path[-1].lower()} item from {brand}.",
                category_id=category_id,
                category_path=path,
                brand=brand,
                price=variants[0].price,
                variants=variants,
                prime_eligible=self.rng.random() < 0.4,
            )
            stock = [
                StockAdjusted(
                    sku=variant.sku,
                    warehouse_id=warehouse,
                    delta=qty,
                    on_hand_after=qty,
                    available_after=qty,
                    reason="receipt",
                )
                for variant in variants
                for warehouse in warehouses(seller.region)
                if (qty := self.rng.randint(0, 60)) > 0
            ]
            out.append(Product(seller.region, payload, stock))
        return out

    def customers(self, n: int) -> list[Customer]:
        """Customers over the regions, a few on Prime."""
        out = []
        for _ in range(n):
            region = self.rng.choice(self.regions)
            country = self.rng.choice(REGION_COUNTRIES.get(region, ["US"]))
            out.append(
                Customer(
                    UserRegistered(
                        customer_id=self._id("cus"),
                        region=region,
                        country=country,
                        locale=REGION_LOCALES.get(country, "en"),
                        signup_channel=self.rng.choice(["web", "web", "ios", "android"]),
                        marketing_opt_in=self.rng.random() < 0.3,
                        prime=self.rng.random() < 0.15,
                    )
                )
            )
        return out

    def sessions(
        self, products: list[Product], customers: list[Customer], events: int
    ) -> Iterator[SessionEvents]:
        """Shopper visits (search, Zipf-popular views, some add-to-cart) until ``events``."""
        ranked = products[:]
        self.rng.shuffle(ranked)  # popularity rank independent of creation order
        cumulative = list(
            itertools.accumulate(1.0 / (rank + 1) ** 1.1 for rank in range(len(ranked)))
        )
        produced = 0
        while produced < events:
            customer = self.rng.choice(customers).payload if self.rng.random() < 0.7 else None
            session_id = self._id("ses")
            customer_id = customer.customer_id if customer else None
            region = customer.region if customer else self.rng.choice(self.regions)
            visit: list[tuple[str, msgspec.Struct]] = []
            if self.rng.random() < 0.4:
                search_id = self._id("srch")
                visit.append(
                    (
                        "search.performed",
                        SearchPerformed(
                            search_id=search_id,
                            session_id=session_id,
                            customer_id=customer_id,
                            query=self.rng.choice(SEARCH_TERMS),
                            result_count=self.rng.randint(0, 200),
                        ),
                    )
                )
            cart_id = self._id("cart")
            in_cart = 0
            for _ in range(min(self.rng.randint(1, 8), events - produced - len(visit))):
                product = self.rng.choices(ranked, cum_weights=cumulative)[0].payload
                variant = self.rng.choice(product.variants)
                visit.append(
                    (
                        "product.viewed",
                        ProductViewed(
                            session_id=session_id,
                            customer_id=customer_id,
                            product_id=product.product_id,
                            sku=variant.sku,
                            source=self.rng.choice(
                                ["search", "category", "direct", "recommendation"]
                            ),
                            price=variant.price,
                        ),
                    )
                )
                if self.rng.random() < 0.15 and len(visit) < events - produced:
                    in_cart += 1
                    visit.append(
                        (
                            "cart.item_added",
                            CartItemAdded(
                                cart_id=cart_id,
                                session_id=session_id,
                                customer_id=customer_id,
                                sku=variant.sku,
                                product_id=product.product_id,
                                seller_id=product.seller_id,
                                quantity=1,
                                quantity_in_cart=1,
                                unit_price=variant.price,
                            ),
                        )
                    )
            produced += len(visit)
            if visit:
                yield SessionEvents(region, session_id, customer_id, visit)
