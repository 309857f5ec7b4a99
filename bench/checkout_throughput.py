"""Benchmark: checkout throughput, latency and CPU per order over HTTP, beside PostgreSQL's own.

    python -m bench.checkout_throughput [--clients 8] [--seconds 10] [--latency-ms 300]
        [--latency-clients 128] [--contention-clients 32] [--scarce-skus 3]
        [--scarce-units 25] [--json FILE]

Starts a private PostgreSQL and Valkey in a temporary folder (no Kafka: nothing is relayed),
serves the app with `souk serve` in a subprocess and seeds sellers and products through the
API. Then, all in one run:

1. **Throughput**: N clients, each adding a random SKU to its cart and checking out, over
   raw HTTP/1.1 keep-alive connections (``bench/rawhttp.py``: the load generator must not be
   the bottleneck). Orders/s, latency, and CPU ms per order of the server, PostgreSQL and
   the load generator (kernel counters, ``bench/cpu.py``).
2. **Contention**: many clients on a few scarce SKUs: exactly the seeded units sell.
3. **A real processor's latency**: a second server whose sandbox waits
   ``--latency-ms`` per processor call (SOUK_SANDBOX_LATENCY_MS), with many clients.
4. **Baselines** on the same database: PostgreSQL's short write transactions/s
   (``BEGIN; INSERT; COMMIT`` from N threads), and the DB floor: the checkout's own two
   transactions replayed from N plain psycopg threads (``bench/checkout_floor.py``).

Exits 1 if any unit was oversold, any request got a 5xx, or the contention round did not sell
exactly its units. ``--json FILE`` writes every figure with a self-describing key.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import secrets
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from bench.checkout_floor import FloorResult, FloorSku, db_floor
from bench.cpu import CpuMeter, server_root_pid
from bench.rawhttp import RawHttp, RawHttpError
from bench.start import StartLine
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
from souk.wiring import build_outbox
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
# The targets on a 2-core machine, printed beside the figures.
TARGET_ORDERS_PER_S = 300.0
TARGET_FLOOR_SHARE = 0.7
TARGET_P99_MS = 50.0
TARGET_LATENCY_ORDERS_PER_S = 150.0


@dataclass(frozen=True)
class Account:
    """A bench client's customer: its bearer headers, cart and saved address."""

    headers: dict[str, str]
    cart_id: str
    address_id: str


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
    cpu_s: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def orders_per_s(self) -> float:
        """Successful checkouts per second of the round."""
        return self.orders / max(self.seconds, 1e-9)

    def cpu_ms_per_order(self) -> dict[str, float]:
        """CPU milliseconds per order, per side (server, postgres, load_generator)."""
        return {side: 1000 * s / max(self.orders, 1) for side, s in self.cpu_s.items()}

    def summary(self) -> dict[str, Any]:
        """The round's figures for the JSON report."""
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "orders": self.orders,
            "orders_per_s": round(self.orders_per_s, 1),
            "checkout_p50_ms": round(percentile(self.checkout_ms, 0.5), 1),
            "checkout_p99_ms": round(percentile(self.checkout_ms, 0.99), 1),
            "add_to_cart_p50_ms": round(percentile(self.add_ms, 0.5), 1),
            "add_to_cart_p99_ms": round(percentile(self.add_ms, 0.99), 1),
            "stock_outs": self.out_of_stock,
            "five_xx": self.five_xx,
            "other_failures": dict(self.other_failures),
        }


def raw_write_rate(dsn: str, threads: int, seconds: float) -> float:
    """Transactions/s of ``threads`` connections each committing one small INSERT at a time."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_short_writes (id BIGSERIAL PRIMARY KEY, "
            "client INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(), note TEXT)"
        )
    counts = [0] * threads
    start_line = StartLine(threads + 1, seconds)

    def write(client: int) -> None:
        with psycopg.connect(dsn) as connection:
            start_line.wait()
            while start_line.running():
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
    start_line.wait()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - start_line.started)


def new_account(base_url: str) -> Account:
    """A fresh customer with a saved address and a cart."""
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        email = f"bench-{secrets.token_hex(6)}@bench.souk.dev"
        registered = http.post(
            "/v1/customers",
            json={
                "email": email,
                "password": PASSWORD,
                "name": "Bench Client",
                "region": "eu",
                "currency": "EUR",
                "country": "DE",
            },
        )
        registered.raise_for_status()
        signed_in = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        signed_in.raise_for_status()
        headers = bearer(signed_in.json()["access_token"])
        address = http.post("/v1/customers/me/addresses", json=ADDRESS, headers=headers)
        address.raise_for_status()
        cart = http.post("/v1/carts", json={"currency": "EUR"}, headers=headers)
        cart.raise_for_status()
        return Account(headers, cart.json()["cart_id"], address.json()["address_id"])


def new_accounts(base_url: str, count: int) -> list[Account]:
    """``count`` fresh accounts, created concurrently."""
    with ThreadPoolExecutor(max_workers=min(count, 16)) as pool:
        return list(pool.map(lambda _n: new_account(base_url), range(count)))


def run_round(
    base_url: str,
    skus: Sequence[str],
    accounts: Sequence[Account],
    seconds: float,
    *,
    meter: CpuMeter | None = None,
    stop_when: Callable[[Round], bool] = lambda _r: False,
    seed: int = 1,
) -> Round:
    """One client per account adding a random SKU to its cart and checking out, for
    ``seconds`` (or until ``stop_when``)."""
    result = Round(len(accounts))
    ready = StartLine(len(accounts) + 1, seconds)
    address = urlsplit(base_url)
    card = {
        "type": "card",
        "card": {
            "number": CARDS["ok"],
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 3,
            "cvc": "123",
        },
    }
    tag = secrets.token_hex(3)

    def client(number: int, account: Account) -> None:
        rng = random.Random(seed * 1000 + number)
        http = RawHttp(address.hostname or "127.0.0.1", address.port or 80)
        checkout_body = {
            "cart_id": account.cart_id,
            "shipping_address": {"address_id": account.address_id},
            "payment_method": card,
        }
        try:
            ready.wait()
            for attempt in itertools.count():
                if not ready.running() or stop_when(result):
                    return
                sku = rng.choice(skus)
                began = time.perf_counter()
                status, body = http.post(
                    f"/v1/carts/{account.cart_id}/items",
                    {"sku": sku, "quantity": 1},
                    account.headers,
                )
                add_ms = (time.perf_counter() - began) * 1000
                if status != 200:
                    with result.lock:
                        _failure(result, "add", status, body)
                    if status == 409:
                        continue  # sold out while browsing: pick another
                    return
                began = time.perf_counter()
                status, body = http.post(
                    "/v1/checkout",
                    checkout_body,
                    {**account.headers, "Idempotency-Key": f"bench-{tag}-{number}-{attempt}"},
                )
                checkout_ms = (time.perf_counter() - began) * 1000
                with result.lock:
                    result.add_ms.append(add_ms)
                    result.checkout_ms.append(checkout_ms)
                    if status == 201:
                        result.orders += 1
                    else:
                        _failure(result, "checkout", status, body)
                if status == 409:
                    # Sold out at checkout: empty the cart so the next attempt starts clean.
                    http.request(
                        "DELETE", f"/v1/carts/{account.cart_id}/items/{sku}", None, account.headers
                    )
        except RawHttpError as error:
            with result.lock:
                result.other_failures[f"connection: {error}"] += 1
        finally:
            http.close()

    threads = [
        threading.Thread(target=client, args=(n, account)) for n, account in enumerate(accounts)
    ]
    for thread in threads:
        thread.start()
    before = meter.read() if meter is not None else None
    ready.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - ready.started
    if meter is not None and before is not None:
        result.cpu_s = meter.read().minus(before)
    return result


def _failure(result: Round, step: str, status: int, body: bytes) -> None:
    if status >= 500:
        result.five_xx += 1
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(json.loads(body).get("code", ""))
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


def floor_skus(engine: Engine, catalog: SeededCatalog) -> list[FloorSku]:
    """The catalog's SKUs with what the DB-floor replay needs to buy them."""
    skus = {sku.sku: (product, sku) for product in catalog.products for sku in product.skus}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT sku, warehouse_id FROM stock_levels WHERE sku = ANY(:skus)"),
            {"skus": sorted(skus)},
        ).all()
    return [
        FloorSku(
            sku=row.sku,
            warehouse_id=row.warehouse_id,
            product_id=skus[row.sku][0].product_id,
            seller_id=skus[row.sku][0].seller_id,
            title=skus[row.sku][0].title,
            price_minor=skus[row.sku][1].prices["EUR"],
        )
        for row in rows
    ]


def postmaster_pid(dsn: str) -> int:
    """The pid of the PostgreSQL server's postmaster."""
    with psycopg.connect(dsn) as connection:
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert backend is not None
    return int(psutil.Process(int(backend[0])).ppid())


@contextlib.contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`souk serve` in a subprocess: (base URL, pid)."""
    with serve_subprocess(env, log_path=log) as url:
        yield url, server_root_pid(urlsplit(url).port or 80)


@dataclass
class Figures:
    """Everything one run measured."""

    main: Round
    contention: Round
    latency: Round
    latency_ms: float
    raw_pg_tx_per_s: float
    floor: FloorResult
    floor_postgres_cpu_ms: float
    stock: StockAudit
    scarce_units: int

    @property
    def five_xx(self) -> int:
        """5xx answers over every round."""
        return self.main.five_xx + self.contention.five_xx + self.latency.five_xx

    @property
    def oversold(self) -> int:
        """Units sold beyond what was seeded."""
        return sum(self.stock.oversold.values())

    @property
    def ok(self) -> bool:
        """Nothing oversold, no 5xx, the contention round sold exactly its units."""
        return self.stock.ok and self.five_xx == 0 and self.contention.orders == self.scarce_units

    def report(self) -> dict[str, Any]:
        """The figures, keyed by what they measure."""
        cpu = self.main.cpu_ms_per_order()
        return {
            "orders_per_s": round(self.main.orders_per_s, 1),
            "checkout_p50_ms": round(percentile(self.main.checkout_ms, 0.5), 1),
            "checkout_p99_ms": round(percentile(self.main.checkout_ms, 0.99), 1),
            "add_to_cart_p50_ms": round(percentile(self.main.add_ms, 0.5), 1),
            "add_to_cart_p99_ms": round(percentile(self.main.add_ms, 0.99), 1),
            "cpu_ms_per_order": {side: round(ms, 2) for side, ms in cpu.items()},
            "raw_pg_tx_per_s": round(self.raw_pg_tx_per_s, 1),
            "db_floor_per_s": round(self.floor.per_s, 1),
            "db_floor_postgres_cpu_ms_per_checkout": round(self.floor_postgres_cpu_ms, 2),
            "orders_vs_db_floor": round(self.main.orders_per_s / max(self.floor.per_s, 1e-9), 3),
            "orders_vs_raw_pg_tx": round(
                self.main.orders_per_s / max(self.raw_pg_tx_per_s, 1e-9), 4
            ),
            "main_round": self.main.summary(),
            "latency_round": {"sandbox_latency_ms": self.latency_ms, **self.latency.summary()},
            "contention_round": {
                "units": self.scarce_units,
                "sold": self.contention.orders,
                **self.contention.summary(),
            },
            "oversold_units": self.oversold,
            "five_xx": self.five_xx,
            "stock_rows_invalid": len(self.stock.invalid),
            "skus_with_drift": len(self.stock.drift),
            "targets": {
                "orders_per_s": TARGET_ORDERS_PER_S,
                "orders_vs_db_floor": TARGET_FLOOR_SHARE,
                "checkout_p99_ms": TARGET_P99_MS,
                "latency_round_orders_per_s": TARGET_LATENCY_ORDERS_PER_S,
            },
            "ok": self.ok,
        }


def main() -> None:
    """Run the benchmark and print figures beside PostgreSQL's own rates."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent checkout clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each round")
    parser.add_argument("--products", type=int, default=20, help="products of the main round")
    parser.add_argument("--contention-clients", type=int, default=32)
    parser.add_argument("--scarce-skus", type=int, default=3)
    parser.add_argument("--scarce-units", type=int, default=25, help="units per scarce SKU")
    parser.add_argument("--latency-ms", type=float, default=300.0, help="processor latency")
    parser.add_argument("--latency-clients", type=int, default=128)
    parser.add_argument("--floor-checkouts", type=int, default=6000, help="DB-floor work")
    parser.add_argument(
        "--workers", type=int, default=1, help="`souk serve` processes (SOUK_HTTP_WORKERS)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    home = temporary_home("souk-bench-")
    settings = Settings(home=home)  # type: ignore[call-arg]
    stack = Stack(settings)
    with console.status("starting PostgreSQL and Valkey…"):
        database_url = stack.up_component("postgres")
        redis_url = stack.up_component("redis")
        upgrade_database(database_url)
    engine: Engine = create_db_engine(
        database_url, pool_size=max(4, args.clients), application_name="souk-bench"
    )
    dsn = libpq_dsn(database_url)
    try:
        figures = measure(args, settings, engine, dsn, database_url, redis_url, home)
    finally:
        engine.dispose()
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)
    _print(args, figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures.report(), indent=2) + "\n")
        console.print(f"figures written to {args.json}")
    raise SystemExit(0 if figures.ok else 1)


def measure(
    args: argparse.Namespace,
    settings: Settings,
    engine: Engine,
    dsn: str,
    database_url: str,
    redis_url: str,
    home: Path,
) -> Figures:
    """Every round, in one run on one database."""
    env = {
        **server_environment(settings, database_url, redis_url),
        "SOUK_HTTP_WORKERS": str(args.workers),
    }
    postgres = postmaster_pid(dsn)
    with server(env, home / "serve.log") as (base_url, pid):
        token = admin_token(settings)
        with console.status("seeding the catalog through the API…"):
            plenty = seed(base_url, token, args.products, 1_000_000, 11)
            scarce = seed(base_url, token, args.scarce_skus, args.scarce_units, 12)
        plenty_skus = [s.sku for p in plenty.products for s in p.skus]
        # One SKU per scarce product, so "few SKUs" means exactly --scarce-skus.
        scarce_skus = [p.skus[0].sku for p in scarce.products]
        with console.status("creating the clients' accounts…"):
            warm = new_accounts(base_url, args.clients)
            steady = new_accounts(base_url, args.clients)
            crowd = new_accounts(base_url, args.contention_clients)
        with console.status(f"warming up ({args.clients} clients, 2 s)…"):
            run_round(base_url, plenty_skus, warm, 2.0, seed=99)
        meter = CpuMeter({"server": [pid], "postgres": [postgres]})
        with console.status(f"checkout round: {args.clients} clients, {args.seconds:.0f} s…"):
            main_round = run_round(base_url, plenty_skus, steady, args.seconds, meter=meter)
        units = args.scarce_skus * args.scarce_units
        with console.status(
            f"contention round: {args.contention_clients} clients on "
            f"{len(scarce_skus)} SKUs x {args.scarce_units} units…"
        ):
            contention = run_round(
                base_url,
                scarce_skus,
                crowd,
                max(args.seconds, 10.0),
                stop_when=lambda r: r.orders >= units,
                seed=7,
            )
    latency_env = {**env, "SOUK_SANDBOX_LATENCY_MS": str(args.latency_ms)}
    with server(latency_env, home / "serve-latency.log") as (base_url, _pid):
        with console.status(f"creating {args.latency_clients} accounts…"):
            patient = new_accounts(base_url, args.latency_clients)
        with console.status(
            f"processor latency {args.latency_ms:.0f} ms: {args.latency_clients} clients…"
        ):
            latency = run_round(base_url, plenty_skus, patient, args.seconds, seed=5)
    with console.status(f"raw PostgreSQL short writes: {args.clients} threads…"):
        raw = raw_write_rate(dsn, args.clients, args.seconds)
    floor_meter = CpuMeter({"postgres": [postgres]})
    floor_cpu: dict[str, float] = {}

    def timed(run: Callable[[], FloorResult]) -> FloorResult:
        before = floor_meter.read()
        result = run()
        floor_cpu.update(floor_meter.read().minus(before))
        return result

    with console.status(f"DB floor: the checkout's transactions from {args.clients} threads…"):
        floor = db_floor(
            engine,
            build_outbox(settings),
            floor_skus(engine, plenty),
            args.clients,
            args.seconds,
            args.floor_checkouts,
            around=timed,
        )
    seeded = {**plenty.initial_stock(), **{s: args.scarce_units for s in scarce_skus}}
    return Figures(
        main=main_round,
        contention=contention,
        latency=latency,
        latency_ms=args.latency_ms,
        raw_pg_tx_per_s=raw,
        floor=floor,
        floor_postgres_cpu_ms=1000 * floor_cpu.get("postgres", 0.0) / max(floor.checkouts, 1),
        stock=audit_stock(engine, seeded),
        scarce_units=units,
    )


def _print(args: argparse.Namespace, figures: Figures) -> None:
    main_round, floor = figures.main, figures.floor
    table = Table(
        title=f"Checkout over HTTP: add to cart + checkout ({args.clients} clients, "
        f"{args.seconds:.0f} s rounds, 2 cores)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline / target", justify="right")
    table.add_row(
        f"baseline: PostgreSQL BEGIN; INSERT; COMMIT ({args.clients} threads)",
        f"{figures.raw_pg_tx_per_s:,.0f} tx/s",
        "1.00",
    )
    table.add_row(
        f"DB floor: the checkout's T1 + T2 replayed ({args.clients} psycopg threads)",
        f"{floor.per_s:,.0f} checkouts/s",
        f"{floor.per_s / max(figures.raw_pg_tx_per_s, 1e-9):.3f}",
    )
    table.add_row(
        "  PostgreSQL CPU per replayed checkout", f"{figures.floor_postgres_cpu_ms:.2f} ms", ""
    )
    share = main_round.orders_per_s / max(floor.per_s, 1e-9)
    table.add_row(
        "[bold]orders/s over HTTP",
        f"[bold]{main_round.orders_per_s:,.1f}",
        f"{share:.2f} of the floor (target {TARGET_FLOOR_SHARE}); target "
        f"{TARGET_ORDERS_PER_S:.0f}/s",
    )
    table.add_row(
        "checkout p50 / p99",
        _p50_p99(main_round.checkout_ms),
        f"p99 target {TARGET_P99_MS:.0f} ms",
    )
    table.add_row("add to cart p50 / p99", _p50_p99(main_round.add_ms), "")
    for side, ms in main_round.cpu_ms_per_order().items():
        table.add_row(f"CPU per order: {side.replace('_', ' ')}", f"{ms:.2f} ms", "")
    table.add_row(
        "orders / other failures",
        f"{main_round.orders} / {sum(main_round.other_failures.values())}",
        "",
    )
    latency = figures.latency
    table.add_row(
        f"processor at {figures.latency_ms:.0f} ms per call, {latency.clients} clients",
        f"{latency.orders_per_s:,.1f} orders/s",
        f"target {TARGET_LATENCY_ORDERS_PER_S:.0f}/s",
    )
    table.add_row("  its checkout p50 / p99", _p50_p99(latency.checkout_ms), "")
    contention = figures.contention
    table.add_row(
        f"contention: {args.contention_clients} clients, {args.scarce_skus} SKUs x "
        f"{args.scarce_units} units",
        f"{contention.orders} sold, {contention.out_of_stock} stock-outs",
        f"must be {figures.scarce_units}",
    )
    table.add_row("contention checkout p50 / p99", _p50_p99(contention.checkout_ms), "")
    stock = figures.stock
    table.add_row(
        "units seeded / sold / on hand",
        f"{stock.seeded:,} / {stock.sold:,} / {stock.on_hand:,}",
        "",
    )
    oversold = figures.oversold
    table.add_row(
        "[bold]oversold units (must be 0)", f"[{'green' if oversold == 0 else 'red'}]{oversold}", ""
    )
    table.add_row("stock rows negative or over-reserved", str(len(stock.invalid)), "")
    table.add_row("SKUs whose stock and live orders disagree", str(len(stock.drift)), "")
    table.add_row("[bold]5xx responses (must be 0)", str(figures.five_xx), "")
    console.print(table)
    for name, round_ in (("main", main_round), ("contention", contention), ("latency", latency)):
        for what, count in round_.other_failures.most_common():
            console.print(f"[yellow]{name} round failures:[/yellow] {what} x {count}")
    if stock.drift:
        console.print(
            f"[yellow]drift (SKU: units gone - units on live orders):[/yellow] {stock.drift}"
        )
    verdict = "[green]OK[/green]" if figures.ok else "[red]FAILED[/red]"
    console.print(
        f"bench {verdict}: {oversold} units oversold, {figures.five_xx} server errors, "
        f"{contention.orders}/{figures.scarce_units} scarce units sold"
    )


def _p50_p99(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{statistics.median(samples):,.1f} / {percentile(samples, 0.99):,.1f} ms"


if __name__ == "__main__":
    main()
