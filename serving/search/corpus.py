"""Generated product documents for benchmarks and tests, and the demo's sample searches.

``build_search_corpus(n, seed)`` yields the same documents for the same seed; ``build_index``
writes them into a fresh tantivy version (200,000 documents in seconds).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from serving.search.model import ProductDoc, SearchRequest
from serving.search.service import SearchService
from serving.search.tantivy_index import TantivySearchIndex

# leaf category id -> (brands, nouns, median price in EUR)
CATALOG: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    "cat_electronics_audio": (
        ("Sonyx", "Boze", "JBLoud"),
        ("Wireless Headphones", "Earbuds", "Bluetooth Speaker", "Headset"),
        80.0,
    ),
    "cat_electronics_phones": (
        ("Nokio", "Samsong", "Pixelate"),
        ("Smartphone", "Phone Case", "Fast Charger"),
        250.0,
    ),
    "cat_electronics_laptops": (
        ("Lenova", "Dellish", "Asos"),
        ("Ultrabook", "Gaming Laptop", "Chromebook"),
        900.0,
    ),
    "cat_electronics_cameras": (
        ("Kanon", "Nikkon", "Fujifilmo"),
        ("Mirrorless Camera", "Action Camera", "Tripod"),
        400.0,
    ),
    "cat_fashion_accessories": (
        ("RayBan", "Oakly", "Polarix"),
        ("Polarized Sunglasses", "Aviator Sunglasses", "Leather Wallet", "Watch Strap"),
        60.0,
    ),
    "cat_fashion_shoes": (
        ("Nikey", "Adidos", "Pumba"),
        ("Running Shoes", "Sneakers", "Hiking Boots"),
        90.0,
    ),
    "cat_home_kitchen_cookware": (
        ("Tefala", "Kitchenaid", "Ikeo"),
        ("Frying Pan", "Electric Kettle", "Knife Set", "Stock Pot"),
        40.0,
    ),
    "cat_home_kitchen_furniture": (
        ("Ikeo", "Hemnes", "Oakwood"),
        ("Standing Desk", "Office Chair", "Bookshelf", "Sofa"),
        150.0,
    ),
    "cat_sports_fitness": (
        ("Decathlan", "Garminn", "Fitbyte"),
        ("Yoga Mat", "Smartwatch", "Dumbbells", "Resistance Bands"),
        45.0,
    ),
    "cat_beauty_skincare": (
        ("Lorael", "Niveo", "Clinique"),
        ("Moisturiser", "Sunscreen", "Face Serum"),
        20.0,
    ),
    "cat_books_fiction": (
        ("Penguinn", "Harper", "Vintage"),
        ("Crime Novel", "Thriller", "Short Stories", "Fantasy Saga"),
        15.0,
    ),
}
ADJECTIVES = ("Classic", "Pro", "Lite", "Max", "Eco", "Urban", "Sport", "Deluxe", "Mini", "Plus")
COLOURS = ("black", "white", "blue", "red", "green", "grey")
CURRENCY = {"eu": "EUR", "us": "USD", "in": "INR"}
# Rough value of one unit in EUR, to price generated products in their region's currency.
_EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "INR": 0.011, "GBP": 1.17}
# The demo's sample searches: plain, misspelled, with a filter.
DEMO_QUERIES: tuple[str, ...] = (
    "headphones",
    "wireles hedphones",
    "sunglas",
    "runing shoes",
    "kettle",
)


def build_search_corpus(
    n: int, seed: int = 7, regions: Sequence[str] = ("eu", "us", "in")
) -> Iterator[ProductDoc]:
    """``n`` reproducible product documents spread over ``regions`` (Zipf-like popularity)."""
    rng = random.Random(seed)
    categories = sorted(CATALOG)
    for i in range(n):
        region = regions[i % len(regions)]
        currency = CURRENCY.get(region, "EUR")
        category = categories[rng.randrange(len(categories))]
        brands, nouns, median = CATALOG[category]
        brand = brands[rng.randrange(len(brands))]
        noun = nouns[rng.randrange(len(nouns))]
        colour = COLOURS[rng.randrange(len(COLOURS))]
        title = f"{brand} {ADJECTIVES[rng.randrange(len(ADJECTIVES))]} {noun}"
        price_eur = median * rng.lognormvariate(0, 0.5)
        price_minor = max(100, int(price_eur / _EUR_PER_UNIT[currency] * 100))
        product_id = f"prd_{i % 16:02x}_{seed:04d}{i:08d}"
        skus = [f"{product_id}-{colour}"]
        available = 0 if rng.random() < 0.15 else rng.randint(1, 50)
        yield ProductDoc(
            product_id=product_id,
            region=region,
            seller_id=f"sel_{rng.randrange(max(1, n // 50 + 1)):05d}",
            version=1,
            title=title,
            description=f"A {colour} {noun.lower()} by {brand}, {category.split('_')[-1]} range.",
            brand=brand,
            category_id=category,
            category_path=category.split("_")[1:],
            currency=currency,
            price_minor=price_minor,
            skus=skus,
            prime=rng.random() < 0.4,
            created_us=1_700_000_000_000_000 + i * 1_000_000,
            popularity=float(int(1000 / (1 + rng.paretovariate(1.2)))),
            stock={skus[0]: {f"wh_{region}_1": [available, 1]}},
        )


def build_index(
    root: Path, n: int, seed: int = 7, regions: Sequence[str] = ("eu", "us", "in")
) -> TantivySearchIndex:
    """A tantivy index of ``n`` generated products under ``root`` (one current version each)."""
    index = TantivySearchIndex(root, regions, _EUR_PER_UNIT)
    docs = list(build_search_corpus(n, seed, regions))
    for region in regions:
        version = index.build_version(region, (d for d in docs if d.region == region))
        index.activate(region, version)
    return index


def demo_lines(
    service: SearchService, queries: Sequence[str] = DEMO_QUERIES, top: int = 3
) -> list[str]:
    """One line per sample search: the query as understood, the total and the top hits."""
    lines = []
    for q in queries:
        found = service.search(SearchRequest(q=q, region="all", page_size=top))
        shown = f"{q!r}" + (f" -> {found.understood!r}" if found.corrected else "")
        titles = "; ".join(
            f"{h.title} ({h.price_minor / 100:.2f} {h.currency})" for h in found.hits
        )
        lines.append(f"{shown}: {found.total} hits in {found.took_ms:.1f} ms - {titles or 'none'}")
    return lines
