"""Seeding through the API and a short shopper simulation against the live app on the real stack."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import Engine, text

from souk.seed import CatalogPlan, SeededCatalog, seed_catalog
from souk.services import Services
from souk.simulation import SimulationConfig, audit_stock, run_simulation
from souk.synthetic import SyntheticWorld
from tests.integration.http import admin_headers


def admin_token(services: Services) -> str:
    return admin_headers(services.tokens)["Authorization"].removeprefix("Bearer ")


def seed(live_url: str, services: Services, **plan: Any) -> SeededCatalog:
    sizes = {"sellers": 2, "products": 10, "stock": (4, 12), "scarce_share": 0.3, **plan}
    return seed_catalog(
        live_url,
        admin_token(services),
        SyntheticWorld(["eu", "us", "in"], seed=5),
        CatalogPlan(**sizes),
        tag=secrets.token_hex(3),
    )


def test_seeding_lists_approved_sellers_products_prices_and_stock(
    live_url: str, services: Services
) -> None:
    progress: list[tuple[str, int, int]] = []
    catalog = seed_catalog(
        live_url,
        admin_token(services),
        SyntheticWorld(["eu", "us", "in"], seed=9),
        CatalogPlan(sellers=2, products=6, scarce_share=0.5),
        lambda stage, done, total: progress.append((stage, done, total)),
        tag=secrets.token_hex(3),
    )
    assert len(catalog.products) == 6 and len(catalog.sellers) == 2
    last = {stage: (done, total) for stage, done, total in progress}
    assert last == {
        "sellers": (2, 2),
        "products": (6, 6),
        "stock": (sum(len(s.stock) for s in catalog.skus),) * 2,
    }
    weights = [p.weight for p in catalog.products]
    assert weights == sorted(weights, reverse=True)  # most popular first
    assert any(sku.scarce for sku in catalog.skus)
    with httpx.Client(base_url=live_url) as http:
        for product in catalog.products:
            shown = http.get(f"/v1/products/{product.product_id}").json()
            assert shown["status"] == "active"
            assert shown["seller_id"] in {s.seller_id for s in catalog.sellers}
            assert 1 <= len(shown["variants"]) <= 3
            for variant in shown["variants"]:
                assert set(variant["prices"]) == {"EUR", "USD", "INR"}
                seeded = catalog.sku(variant["sku"])
                stock = http.get(f"/v1/inventory/{seeded.sku}").json()
                assert stock["on_hand"] == seeded.total_stock > 0
                assert {
                    w["warehouse_id"]: w["on_hand"] for w in stock["warehouses"] if w["on_hand"]
                } == dict(seeded.stock)
        for seller in catalog.sellers:
            assert seller.seller_id.startswith("sel")


def test_simulated_shoppers_buy_without_5xx_and_never_oversell(
    live_url: str, services: Services, engine: Engine
) -> None:
    catalog = seed(live_url, services)
    report = run_simulation(
        live_url,
        catalog,
        SimulationConfig(
            users=10,
            rate=5.0,
            duration=5.0,
            seed=3,
            workers=6,
            fraud_share=0.1,
            replay_share=0.5,  # exercise the idempotency record and cancelling more than usual
            cancel_share=0.3,
        ),
        show_progress=False,
    )
    assert report.ok, (report.unexpected, report.samples)
    assert report.five_xx == 0 and report.transport_errors == 0
    assert report.sessions == report.sessions_planned > 10
    assert report.checkouts_succeeded > 0 and report.registrations > 0
    assert report.events_sent > 0 and report.views > 0
    assert report.idempotent_replays > 0 and report.cancels > 0 and report.cart_merges > 0

    audit = audit_stock(engine, catalog.initial_stock())
    assert audit.ok, audit
    assert not audit.drift, audit.drift
    assert audit.sold == audit.seeded - audit.on_hand > 0
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT order_id, status, customer_id FROM orders WHERE order_id = ANY(:ids)"),
            {"ids": list(report.orders)},
        ).all()
        negative = connection.execute(
            text("SELECT count(*) FROM stock_levels WHERE on_hand < 0 OR reserved < 0")
        ).scalar_one()
    assert negative == 0
    statuses = {row.order_id: row.status for row in rows}
    assert set(statuses) == set(report.orders)
    for order_id, record in report.orders.items():
        assert rows and {r.customer_id for r in rows if r.order_id == order_id} == {
            record.customer_id
        }
        assert statuses[order_id] == ("cancelled" if record.cancelled else "paid")
    # Fraud ground truth names real accounts and orders.
    assert report.fraud_orders() <= set(report.orders)
    assert all(label.customer_id.startswith("cus") for label in report.fraud_labels)
