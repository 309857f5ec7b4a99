"""A small known catalog for search tests: hand-written products plus generated filler."""

from __future__ import annotations

from serving.search.corpus import build_search_corpus
from serving.search.model import FxTable, ProductDoc

FX_RATES = {"EUR": 1.0, "USD": 0.92, "INR": 0.011, "GBP": 1.17}
FX = FxTable(FX_RATES)
REGIONS = ["eu", "us"]


def product(
    pid: str,
    title: str,
    *,
    region: str = "eu",
    brand: str | None = None,
    category: str = "cat_electronics_audio",
    price: int = 5000,
    currency: str = "EUR",
    available: int = 5,
    popularity: float = 0.0,
    prime: bool = False,
    description: str = "",
    created: int = 0,
) -> ProductDoc:
    """One product with stock in one warehouse."""
    sku = f"{pid}-1"
    return ProductDoc(
        product_id=pid,
        region=region,
        seller_id=f"sel_{region}",
        version=1,
        title=title,
        description=description,
        brand=brand,
        category_id=category,
        currency=currency,
        price_minor=price,
        skus=[sku],
        prime=prime,
        popularity=popularity,
        created_us=created,
        stock={sku: {f"wh_{region}_1": [available, 1]}},
    )


KNOWN: list[ProductDoc] = [
    product(
        "p_headphones",
        "Sonyx Wireless Headphones",
        brand="Sonyx",
        price=12999,
        popularity=50,
        created=3,
    ),
    product("p_wired", "Boze Wired Headphones", brand="Boze", price=4999, created=2),
    product(
        "p_speaker",
        "JBLoud Bluetooth Speaker",
        brand="JBLoud",
        price=7999,
        description="Pairs with wireless headphones too",
    ),
    product(
        "p_sunglasses",
        "RayBan Polarized Sunglasses",
        brand="RayBan",
        category="cat_fashion_accessories",
        price=8900,
        prime=True,
    ),
    product(
        "p_shoes",
        "Nikey Running Shoes",
        brand="Nikey",
        category="cat_fashion_shoes",
        price=9900,
        prime=True,
    ),
    product(
        "p_shoes_gone",
        "Nikey Running Shoes",
        brand="Nikey",
        category="cat_fashion_shoes",
        price=9900,
        available=0,
    ),
    product(
        "p_kettle",
        "Tefala Electric Kettle",
        brand="Tefala",
        category="cat_home_kitchen_cookware",
        price=3500,
    ),
    product(
        "p_us_headphones",
        "Sonyx Studio Headphones",
        region="us",
        brand="Sonyx",
        price=19999,
        currency="USD",
        popularity=5,
    ),
    product(
        "p_us_desk",
        "Oakwood Standing Desk",
        region="us",
        brand="Oakwood",
        category="cat_home_kitchen_furniture",
        price=45000,
        currency="USD",
    ),
]


def catalog(filler: int = 300) -> list[ProductDoc]:
    """The known products plus generated books (no word in common with the known queries)."""
    extra = [
        d
        for d in build_search_corpus(filler * 12, seed=3, regions=REGIONS)
        if d.category_id == "cat_books_fiction"
    ][:filler]
    return [*KNOWN, *extra]
