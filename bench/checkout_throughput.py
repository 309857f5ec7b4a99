"""Benchmark: checkout throughput and latency over HTTP, and overselling under contention.

Baseline: PostgreSQL's raw short-write-transaction rate (N threads each running
``BEGIN; INSERT a small row; COMMIT``) measured in the same run on the same database, so the
ratio says what a whole checkout (cart, reservation in Redis and PostgreSQL, order, sandbox
payment, outbox events) costs in units of the cheapest durable write.

    python -m bench.checkout_throughput [--clients 8] [--seconds 10]
        [--contention-clients 32] [--scarce-skus 3] [--scarce-units 25]

Starts a private PostgreSQL and Valkey in a temporary folder (no Kafka: nothing is relayed),
serves the app with uvicorn in a subprocess, seeds sellers and products through the API, then
runs two rounds: plenty of stock (throughput), then many clients on a few scarce SKUs
(contention). Exits 1 if any SKU was oversold or any request failed with a 5xx.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import secrets
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from souk.seed import CatalogPlan, SeededCatalog, bearer, seed_catalog
from souk.settings import Settings
from souk.simulate_cli import admin_token
from souk.simulation import (
    CARDS,
    StockAudit,
    audit_stock,
    percentile,
    serve_subprocess,
    server_environment,
)
from souk.stack import Stack
from souk.stack.homes import temporary_home
from souk.synthetic import SyntheticWorld
from transactional.shared.db import create_db_engine, libpq_dsn
from transactional.shared.migrations import upgrade_database

console = Console()
PASSWORD = "bench-client-password"
ADDRESS = {
    "full_name": "Bench Client",
    "line1": "Invalidenstr. 116",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


@dataclass
class Round:
    """What one round of checkout clients achieved."""

    clients: int
    seconds: float = 0.0
    orders: int = 0
    out_of_stock: int = 0
    other_failures: Counter[str] = field(default_factory=Counter)
    five_xx: int = 0
    checkout_ms: list[float] = field(default_factory=list)
    add_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def orders_per_s(self) -> float:
        """Successful checkouts per second of the round."""
        return self.orders / max(self.seconds, 1e-9)


def raw_write_rate(dsn: str, threads: int, seconds: float) -> float:
    """Transactions/s of ``threads`` connections each committing one small INSERT at a time."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_short_writes (id BIGSERIAL PRIMARY KEY, "
            "client INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(), note TEXT)"
        )
    counts = [0] * threads
    start_line = threading.Barrier(threads + 1)
    deadline = [0.0]

    def write(client: int) -> None:
        with psycopg.connect(dsn) as connection:
            start_line.wait()
            while time.perf_counter() < deadline[0]:
                # psycopg opens the transaction (BEGIN) with the first statement.
                connection.execute(
                    "INSERT INTO bench_short_writes (client, note) VALUES (%s, %s)",
                    (client, "x" * 64),
                )
                connection.commit()
                counts[client] += 1

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start_line.wait()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def _client_account(http: httpx.Client, currency: str = "EUR") -> tuple[dict[str, str], str, str]:
    """A fresh customer with a saved address and a cart: (auth headers, cart id, address id)."""
    email = f"bench-{secrets.token_hex(6)}@bench.souk.dev"
    registered = http.post(
        "/v1/customers",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Bench Client",
            "region": "eu",
            "currency": currency,
            "country": "DE",
        },
    )
    registered.raise_for_status()
    signed_in = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    signed_in.raise_for_status()
    headers = bearer(signed_in.json()["access_token"])
    address = http.post("/v1/customers/me/addresses", json=ADDRESS, headers=headers)
    address.raise_for_status()
    cart = http.post("/v1/carts", json={"currency": currency}, headers=headers)
    cart.raise_for_status()
    return headers, cart.json()["cart_id"], address.json()["address_id"]


def run_round(
    base_urls: Sequence[str],
    skus: Sequence[str],
    clients: int,
    seconds: float,
    *,
    stop_when: Callable[[Round], bool] = lambda _r: False,
    seed: int = 1,
) -> Round:
    """``clients`` threads adding a random SKU to their cart and checking out, for ``seconds``."""
    result = Round(clients)
    ready = threading.Barrier(clients + 1)
    deadline = [0.0]
    card = {
        "type": "card",
        "card": {
            "number": CARDS["ok"],
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 3,
            "cvc": "123",
        },
    }

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        base_url = base_urls[number % len(base_urls)]
        with httpx.Client(base_url=base_url, timeout=60.0) as http:
            headers, cart_id, address_id = _client_account(http)
            ready.wait()
            for attempt in itertools.count():
                if time.perf_counter() >= deadline[0] or stop_when(result):
                    return
                sku = rng.choice(skus)
                began = time.perf_counter()
                added = http.post(
                    f"/v1/carts/{cart_id}/items",
                    json={"sku": sku, "quantity": 1},
                    headers=headers,
                )
                add_ms = (time.perf_counter() - began) * 1000
                if added.status_code != 200:
                    with result.lock:
                        _failure(result, "add", added)
                    if added.status_code == 409:
                        continue  # sold out while browsing: pick another
                    return
                began = time.perf_counter()
                response = http.post(
                    "/v1/checkout",
                    json={
                        "cart_id": cart_id,
                        "shipping_address": {"address_id": address_id},
                        "payment_method": card,
                    },
                    headers={**headers, "Idempotency-Key": f"bench-{number}-{attempt}"},
                )
                checkout_ms = (time.perf_counter() - began) * 1000
                with result.lock:
                    result.add_ms.append(add_ms)
                    result.checkout_ms.append(checkout_ms)
                    if response.status_code in (200, 201):
                        result.orders += 1
                    else:
                        _failure(result, "checkout", response)
                if response.status_code == 409:
                    # Sold out at checkout: empty the cart so the next attempt starts clean.
                    http.delete(f"/v1/carts/{cart_id}/items/{sku}", headers=headers)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    deadline[0] = started + seconds
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def _failure(result: Round, step: str, response: httpx.Response) -> None:
    status = response.status_code
    if status >= 500:
        result.five_xx += 1
    code = ""
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code = str(response.json().get("code", ""))
    if status == 409 and code == "insufficient_stock":
        if step == "checkout":
            result.out_of_stock += 1
        return
    result.other_failures[f"{step} {status} {code}".strip()] += 1


def seed(base_url: str, token: str, products: int, units: int, world_seed: int) -> SeededCatalog:
    """Products (one warehouse each) with ``units`` per SKU, through the API."""
    return seed_catalog(
        base_url,
        token,
        SyntheticWorld(["eu"], world_seed),
        CatalogPlan(
            sellers=max(1, products // 10),
            products=products,
            stock=(units, units),
            scarce_share=0.0,
            scarce_top_products=0,
            second_warehouse_share=0.0,
        ),
    )


def main() -> None:
    """Run the benchmark and print figures beside the raw PostgreSQL write rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent checkout clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each round")
    parser.add_argument("--products", type=int, default=20, help="products of the main round")
    parser.add_argument("--contention-clients", type=int, default=32)
    parser.add_argument("--scarce-skus", type=int, default=3)
    parser.add_argument("--scarce-units", type=int, default=25, help="units per scarce SKU")
    parser.add_argument(
        "--servers", type=int, default=1, help="`souk serve` processes (clients spread over them)"
    )
    args = parser.parse_args()

    home = temporary_home("souk-bench-")
    settings = Settings(home=home)
    stack = Stack(settings)
    with console.status("starting PostgreSQL and Valkey…"):
        database_url = stack.up_component("postgres")
        redis_url = stack.up_component("redis")
        upgrade_database(database_url)
    engine: Engine = create_db_engine(database_url, pool_size=2, application_name="souk-bench")
    try:
        env = server_environment(settings, database_url, redis_url)
        with contextlib.ExitStack() as servers:
            urls = [
                servers.enter_context(serve_subprocess(env, log_path=home / f"serve-{n}.log"))
                for n in range(args.servers)
            ]
            base_url = urls[0]
            token = admin_token(settings)
            with console.status("seeding the catalog through the API…"):
                plenty = seed(base_url, token, args.products, 1_000_000, 11)
                scarce = seed(base_url, token, args.scarce_skus, args.scarce_units, 12)
            plenty_skus = [s.sku for p in plenty.products for s in p.skus]
            # One SKU per scarce product, so "few SKUs" means exactly --scarce-skus.
            scarce_skus = [p.skus[0].sku for p in scarce.products]
            scarce_seeded = {sku: args.scarce_units for sku in scarce_skus}
            with console.status(f"warming up ({args.clients} clients, 2 s)…"):
                run_round(urls, plenty_skus, args.clients, 2.0, seed=99)
            with console.status(f"checkout round: {args.clients} clients, {args.seconds:.0f} s…"):
                main_round = run_round(urls, plenty_skus, args.clients, args.seconds)
            with console.status(
                f"contention round: {args.contention_clients} clients on "
                f"{len(scarce_skus)} SKUs x {args.scarce_units} units…"
            ):
                total_scarce = sum(scarce_seeded.values())
                contention = run_round(
                    urls,
                    scarce_skus,
                    args.contention_clients,
                    args.seconds,
                    stop_when=lambda r: r.orders >= total_scarce,
                    seed=7,
                )
        with console.status(f"raw PostgreSQL short writes: {args.clients} threads…"):
            raw = raw_write_rate(libpq_dsn(database_url), args.clients, args.seconds)
        stock = audit_stock(
            engine, {**plenty.initial_stock(), **{s: scarce_seeded[s] for s in scarce_skus}}
        )
    finally:
        engine.dispose()
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)
    ok = _print(args, main_round, contention, raw, stock)
    raise SystemExit(0 if ok else 1)


def _print(
    args: argparse.Namespace, main_round: Round, contention: Round, raw: float, stock: StockAudit
) -> bool:
    table = Table(
        title=f"Checkout over HTTP ({args.clients} clients, {args.seconds:.0f} s; "
        "add to cart + checkout: reserve, order, sandbox payment, outbox)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_row(
        f"baseline: PostgreSQL BEGIN; INSERT; COMMIT ({args.clients} threads)",
        f"{raw:,.0f} tx/s",
        "1.00",
    )
    table.add_row(
        "checkouts (orders placed)",
        f"{main_round.orders_per_s:,.1f} orders/s",
        f"{main_round.orders_per_s / raw:.4f}",
    )
    table.add_row(
        "short writes per checkout (inverse ratio)",
        "",
        f"{raw / max(main_round.orders_per_s, 1e-9):,.0f}",
    )
    table.add_row("checkout p50 / p99", _p50_p99(main_round.checkout_ms), "")
    table.add_row("add to cart p50 / p99", _p50_p99(main_round.add_ms), "")
    table.add_row(
        "orders / failures", f"{main_round.orders} / {sum(main_round.other_failures.values())}", ""
    )
    table.add_row(
        f"contention: {args.contention_clients} clients, {args.scarce_skus} SKUs x "
        f"{args.scarce_units} units",
        f"{contention.orders} orders, {contention.out_of_stock} stock-outs",
        "",
    )
    table.add_row("contention checkout p50 / p99", _p50_p99(contention.checkout_ms), "")
    table.add_row(
        "units seeded / sold / on hand",
        f"{stock.seeded:,} / {stock.sold:,} / {stock.on_hand:,}",
        "",
    )
    oversold = sum(stock.oversold.values())
    table.add_row(
        "[bold]oversold units (must be 0)",
        f"[{'green' if oversold == 0 else 'red'}]{oversold}",
        "",
    )
    table.add_row("stock rows negative or over-reserved", str(len(stock.invalid)), "")
    table.add_row("SKUs whose stock and live orders disagree", str(len(stock.drift)), "")
    five_xx = main_round.five_xx + contention.five_xx
    table.add_row("5xx responses", str(five_xx), "")
    console.print(table)
    failures = main_round.other_failures + contention.other_failures
    for what, count in failures.most_common():
        console.print(f"[yellow]failures:[/yellow] {what} x {count}")
    if stock.drift:
        console.print(
            f"[yellow]drift (SKU: units gone - units on live orders):[/yellow] {stock.drift}"
        )
    sold_out = contention.orders == args.scarce_skus * args.scarce_units
    if not sold_out:
        console.print(
            f"[yellow]contention round ended before selling out ({contention.orders} of "
            f"{args.scarce_skus * args.scarce_units} units)[/yellow]"
        )
    ok = stock.ok and five_xx == 0
    verdict = "[green]OK[/green]" if ok else "[red]FAILED[/red]"
    console.print(f"bench {verdict}: {oversold} units oversold, {five_xx} server errors")
    return ok


def _p50_p99(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{statistics.median(samples):,.0f} / {percentile(samples, 0.99):,.0f} ms"


if __name__ == "__main__":
    main()
