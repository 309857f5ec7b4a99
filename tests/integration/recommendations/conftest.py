"""A small shop with promoted models, served by its own app over the test stack.

Its own SOUK_HOME (so its own model registry and lake) and an extra fresh region (so the
trending keys and topics it writes are its own), on the session's PostgreSQL, Redis and
broker. Two taste groups (phones, audio) of eight products each; synthetic shoppers stick to
one group; the buyer is a real customer who bought one phone through the checkout.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from models.recommenders.als import train_implicit
from models.recommenders.fbt import train_fbt
from models.registry import ModelRegistry
from serving.app import create_app
from serving.recommendations.bench import PromotedVersions, promote_models
from serving.recommendations.service import RecommendationService
from souk.services import Services, build_services
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from souk.stack.homes import temporary_home
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    post_checkout,
    set_stock,
)

PHONES, AUDIO = "cat_electronics_phones", "cat_electronics_audio"
#: The slices the shop needs (set-up through the purchase path, then recommendations).
DOMAINS = [
    "customers",
    "sellers",
    "catalog",
    "inventory",
    "carts",
    "checkout",
    "tracking",
    "recommendations",
]


@dataclass
class Shop:
    """The shop's ids, services and client."""

    settings: Settings
    services: Services
    client: Any
    region: str
    phones: list[str]
    audio: list[str]
    out_of_stock: str
    archived: str
    buyer: dict[str, Any]
    seller: dict[str, Any]
    bought: str
    versions: PromotedVersions
    registry: ModelRegistry
    sku_of: dict[str, str] = field(default_factory=dict)

    @property
    def recommendations(self) -> RecommendationService:
        """The app's recommendation service."""
        service: RecommendationService = self.services["recommendations"]
        return service


def interactions(buyer: str, phones: list[str], audio: list[str], seed: int = 5) -> pd.DataFrame:
    """40 shoppers per taste group, each touching 5 of their group's products; the buyer
    viewed phones."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, products in (("p", phones), ("a", audio)):
        for user in range(40):
            for product in rng.choice(products, 5, replace=False):
                rows.append((f"cus_{group}{user:03d}", str(product), float(rng.choice([1, 3, 5]))))
    rows += [(buyer, product, 3.0) for product in phones[:5]]
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "strength"])
    frame["last_at"] = pd.Timestamp("2026-12-01", tz="UTC")
    return frame


def train(shop_ids: tuple[str, list[str], list[str]], seed: int) -> Any:
    """A tiny ALS (8 factors): seconds, and the two groups come apart."""
    buyer, phones, audio = shop_ids
    return train_implicit(
        interactions(buyer, phones, audio),
        factors=8,
        regularization=0.5,
        iterations=12,
        random_state=seed,
        num_threads=1,
    )


@pytest.fixture(scope="module")
def shop(endpoints: Endpoints, engine: Engine) -> Iterator[Shop]:
    """The shop, its models promoted, and a client of its app."""
    region = "r" + secrets.token_hex(4)
    home = temporary_home("souk-recs-")
    settings = Settings(  # type: ignore[call-arg]
        home=home,
        _env_file=None,
        regions=["eu", "us", "in", region],
        password_time_cost=1,
        password_memory_kib=1024,
        recs_catalog_ttl_s=0,  # status changes show at once
        recs_model_check_s=0.05,  # promotions show within a request or two
    )
    services = build_services(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    registry = ModelRegistry(settings=settings)
    app = create_app(services, DOMAINS)
    with TestClient(app, raise_server_exceptions=False) as client:
        admin = admin_headers(services.tokens)
        seller = approved_seller(client, admin)
        sku_of: dict[str, str] = {}
        products: dict[str, list[str]] = {PHONES: [], AUDIO: []}
        for category, name in ((PHONES, "Phone"), (AUDIO, "Headphones")):
            for i in range(8):
                sku = fresh_sku("REC")
                product = list_product(
                    client,
                    seller,
                    skus_prices={sku: 1000 + i},
                    category_id=category,
                    title=f"{name} {i}",
                )
                sku_of[product["product_id"]] = sku
                products[category].append(product["product_id"])
        phones, audio = products[PHONES], products[AUDIO]
        out_of_stock, archived = phones[6], phones[7]
        for product_id, sku in sku_of.items():
            set_stock(client, seller, sku, 0 if product_id == out_of_stock else 50)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE products SET status = 'archived' WHERE product_id = :p"),
                {"p": archived},
            )
        buyer = register(client, region="eu", currency="EUR")
        bought = phones[0]
        cart = filled_cart(client, buyer, {sku_of[bought]: 1})
        paid = post_checkout(client, buyer, checkout_body(cart))
        assert paid.status_code == 201, paid.text

        als = train((buyer["customer_id"], phones, audio), seed=1)
        pairs = pd.DataFrame(
            {
                "product_a": [phones[1], phones[1], phones[1]],
                "product_b": [phones[2], out_of_stock, audio[0]],
                "orders": [6, 5, 3],
            }
        )
        fbt = train_fbt(pairs, min_orders=2)
        versions = promote_models(registry, als, fbt)
        yield Shop(
            settings=settings,
            services=services,
            client=client,
            region=region,
            phones=phones,
            audio=audio,
            out_of_stock=out_of_stock,
            archived=archived,
            buyer=buyer,
            seller=seller,
            bought=bought,
            versions=versions,
            registry=registry,
            sku_of=sku_of,
        )
    services.close()
    shutil.rmtree(home, ignore_errors=True)
