"""Benchmark: checkout throughput, latency and CPU per order over HTTP, beside PostgreSQL's own.

    python -m bench.checkout_throughput [--clients 8] [--seconds 10] [--latency-ms 300]
        [--latency-clients 128] [--contention-clients 32] [--scarce-skus 3]
        [--scarce-units 25] [--money-pairs 3] [--money-seconds S] [--money-only]
        [--drain-timeout 120] [--json FILE]

Starts a private PostgreSQL, Valkey and Kafka-protocol broker in a temporary folder (`souk
serve`'s consumers need the broker; rounds 1-4 relay nothing), serves the app with `souk
serve` in a subprocess and seeds sellers and products through the API. Then, all in one run:

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
5. **Money on vs off** (``bench/checkout_money.py``): two servers, each relaying its outbox
   to a broker of its own, on twin databases of the same PostgreSQL seeded alike. "On":
   tax at checkout, the ledger booked in the checkout's own transaction, the invoicing
   consumer running in `souk serve`; "off": all three disabled. ``--money-pairs`` pairs of
   ``--money-seconds`` rounds alternate on, off, off, on, ... (each starts once both relays
   and the invoices have caught up); orders/s, p50/p99 and CPU per order of each, their
   ratio, invoices issued, uninvoiced orders at each round's end, how long they took to
   catch up and the paid → invoice lag; then `souk ledger check`'s checker on the "on"
   database. Rounds 1-4 run first, as before, with nothing relayed (and the money settings'
   defaults: tax and ledger on, no invoicing). ``--money-only`` runs only this.

One run on the 2-core machine (2026-12-08, loaded by other work: load average 8-11), 8
clients, 3 pairs of 10 s rounds: money on 31.6 orders/s, off 41.7 (0.76x; 0.77x in the run
before); checkout p50 / p99 on 186 / 583 ms, off 140 / 544 ms; server CPU per order 25.8 vs
19.4 ms; 1,035 invoices for 1,035 paid orders, 65-141 uninvoiced at a round's end and caught
up within 0.6 s, paid → invoice lag p50 1.0 s / p99 3.8 s; ledger check passed; the whole
run took 188 s.

Exits 1 if any unit was oversold, any request got a 5xx, the contention round did not sell
exactly its units, the ledger check failed, paid orders were left uninvoiced or a switch was
not honoured. ``--json FILE`` writes every figure with a self-describing key (the money
comparison's under ``money``).
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
from bench.checkout_money import (
    CONFIGS,
    Config,
    MoneyTrace,
    create_database,
    database_now,
    database_url_named,
    invoice_lags_s,
    invoice_progress,
    invoices_issued,
    ledger_violations,
    money_environment,
    money_trace,
    ratio,
    ratio_text,
    redis_url_db,
    schedule,
    unpublished_events,
    wait_until,
)
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
def server(env: dict[str, str], log: Path, *, relay: bool = False) -> Iterator[tuple[str, int]]:
    """`souk serve` in a subprocess (with its outbox relay if ``relay``): (base URL, pid)."""
    with serve_subprocess(env, log_path=log, relay=relay) as url:
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--money-seconds`` defaults to ``--seconds``."""
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
    parser.add_argument(
        "--money-pairs",
        type=int,
        default=3,
        help="on/off round pairs of the money comparison (0: skip it)",
    )
    parser.add_argument(
        "--money-seconds", type=float, default=None, help="length of a money round (--seconds)"
    )
    parser.add_argument("--money-only", action="store_true", help="run only the money comparison")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="longest wait for the relays and the invoicing consumer to catch up",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.money_pairs < 0:
        parser.error("--money-pairs must be 0 or more")
    if args.money_only and args.money_pairs == 0:
        parser.error("--money-only needs --money-pairs of at least 1")
    if args.money_seconds is None:
        args.money_seconds = args.seconds
    return args


def main() -> None:
    """Run the benchmark and print figures beside PostgreSQL's own rates."""
    args = parse_args()
    began = time.perf_counter()
    home = temporary_home("souk-bench-")
    settings = Settings(home=home)
    stack = Stack(settings)
    # The "money off" server publishes to a broker of its own: the "on" server's invoicing
    # consumer must see only its own orders.
    off_home = temporary_home("souk-bench-off-") if args.money_pairs else None
    off_stack = Stack(Settings(home=off_home)) if off_home is not None else None
    brokers: dict[Config, str] = {}
    figures: Figures | None = None
    money: MoneyFigures | None = None
    try:
        with console.status("starting PostgreSQL, Valkey and Kafka…"):
            database_url = stack.up_component("postgres")
            redis_url = stack.up_component("redis")
            # `souk serve`'s consumers (suggest, activity) need a broker even unrelayed.
            kafka_url = stack.up_component("kafka")
            upgrade_database(database_url)
        dsn = libpq_dsn(database_url)
        if not args.money_only:
            engine: Engine = create_db_engine(
                database_url, pool_size=max(4, args.clients), application_name="souk-bench"
            )
            try:
                figures = measure(
                    args, settings, engine, dsn, database_url, redis_url, kafka_url, home
                )
            finally:
                engine.dispose()
        if off_stack is not None:
            with console.status("starting the money-off server's own broker…"):
                brokers = {"on": kafka_url, "off": off_stack.up_component("kafka")}
            money = measure_money(args, settings, dsn, database_url, redis_url, brokers, home)
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)
        if off_stack is not None and off_home is not None:
            off_stack.down(purge=True)
            shutil.rmtree(off_home, ignore_errors=True)
    wall_s = time.perf_counter() - began
    if figures is not None:
        _print(args, figures)
    if money is not None:
        _print_money(args, money)
    ok = (figures is None or figures.ok) and (money is None or money.ok)
    console.print(f"wall time {wall_s:,.0f} s, load average {_load_average()}")
    if args.json is not None:
        report: dict[str, Any] = figures.report() if figures is not None else {}
        if money is not None:
            report["money"] = money.report()
        report.update(wall_s=round(wall_s, 1), load_average=_load_average(), ok=ok)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"figures written to {args.json}")
    raise SystemExit(0 if ok else 1)


def _load_average() -> list[float]:
    return [round(load, 2) for load in psutil.getloadavg()]


def measure(
    args: argparse.Namespace,
    settings: Settings,
    engine: Engine,
    dsn: str,
    database_url: str,
    redis_url: str,
    kafka_url: str,
    home: Path,
) -> Figures:
    """Every round, in one run on one database."""
    env = {
        **server_environment(settings, database_url, redis_url, kafka_url),
        "SOUK_HTTP_WORKERS": str(args.workers),
        # Nothing is relayed in these rounds: no invoices to issue.
        "SOUK_INVOICES_ENABLED": "false",
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


def combined(rounds: Sequence[Round]) -> Round:
    """The rounds as one: their orders, seconds, samples, CPU and failures added up."""
    total = Round(max((r.clients for r in rounds), default=0))
    for round_ in rounds:
        total.seconds += round_.seconds
        total.orders += round_.orders
        total.out_of_stock += round_.out_of_stock
        total.other_failures.update(round_.other_failures)
        total.five_xx += round_.five_xx
        total.checkout_ms += round_.checkout_ms
        total.add_ms += round_.add_ms
        for side, seconds in round_.cpu_s.items():
            total.cpu_s[side] = total.cpu_s.get(side, 0.0) + seconds
    return total


@dataclass
class MoneyFigures:
    """The money comparison: rounds with tax, ledger and invoicing on, and with them off."""

    schedule: list[Config]
    seconds: float
    rounds: dict[Config, list[Round]]
    traces: dict[Config, MoneyTrace]
    paid_orders: int
    invoices: int
    invoice_backlog: int  # paid orders without an invoice after the last wait
    backlog_at_round_end: list[int]  # the same, the moment each "on" round ended
    drain_s: list[float | None]  # how long each round's backlog took to clear (None: it did not)
    invoice_lags_s: list[float]
    ledger_violations: list[str]

    def side(self, config: Config) -> Round:
        """The configuration's rounds as one."""
        return combined(self.rounds[config])

    @property
    def five_xx(self) -> int:
        """5xx answers over the money rounds."""
        return sum(r.five_xx for rounds in self.rounds.values() for r in rounds)

    @property
    def configs_honoured(self) -> bool:
        """ "On" taxed, booked and invoiced its orders; "off" did none of it (tax, invoices)."""
        on, off = self.traces["on"], self.traces["off"]
        return (
            on.taxed_lines > 0
            and on.ledger_transactions > 0
            and on.invoices > 0
            and off.taxed_lines == 0
            and off.invoices == 0
        )

    @property
    def sustained_on_per_s(self) -> float:
        """ "On" orders per second counting the time the invoices took to catch up after
        each round (the rate the consumer can sustain, if lower)."""
        on = self.side("on")
        drained = sum(s for s in self.drain_s if s is not None)
        return on.orders / max(on.seconds + drained, 1e-9)

    @property
    def ok(self) -> bool:
        """No 5xx, the ledger check passes, every paid order invoiced, switches honoured."""
        return (
            self.five_xx == 0
            and not self.ledger_violations
            and self.invoice_backlog == 0
            and self.configs_honoured
        )

    def report(self) -> dict[str, Any]:
        """The comparison's figures, keyed by what they measure."""
        on, off = self.side("on"), self.side("off")
        sides: dict[str, dict[str, Any]] = {}
        for config in CONFIGS:
            side = on if config == "on" else off
            sides[config] = {
                **side.summary(),
                "rounds_orders_per_s": [round(r.orders_per_s, 1) for r in self.rounds[config]],
                "cpu_ms_per_order": {k: round(v, 2) for k, v in side.cpu_ms_per_order().items()},
                "database": self.traces[config].summary(),
            }
        return {
            "schedule": self.schedule,
            "seconds_per_round": self.seconds,
            **sides,
            "orders_per_s_ratio": round(ratio(on.orders_per_s, off.orders_per_s), 3),
            "checkout_p50_ratio": round(
                ratio(percentile(on.checkout_ms, 0.5), percentile(off.checkout_ms, 0.5)), 3
            ),
            "checkout_p99_ratio": round(
                ratio(percentile(on.checkout_ms, 0.99), percentile(off.checkout_ms, 0.99)), 3
            ),
            "on_orders_per_s_with_invoice_drain": round(self.sustained_on_per_s, 1),
            "invoices": {
                "issued": self.invoices,
                "paid_orders": self.paid_orders,
                "backlog_after_drain": self.invoice_backlog,
                "backlog_at_round_end": self.backlog_at_round_end,
                "drain_s": [None if s is None else round(s, 2) for s in self.drain_s],
                "lag_p50_s": round(percentile(self.invoice_lags_s, 0.5), 2),
                "lag_p99_s": round(percentile(self.invoice_lags_s, 0.99), 2),
                "lag_max_s": round(max(self.invoice_lags_s, default=0.0), 2),
            },
            "ledger_check": {
                "passed": not self.ledger_violations,
                "violations": len(self.ledger_violations),
                "first": self.ledger_violations[:5],
            },
            "switches_honoured": self.configs_honoured,
            "five_xx": self.five_xx,
            "ok": self.ok,
        }


def measure_money(
    args: argparse.Namespace,
    settings: Settings,
    dsn: str,
    database_url: str,
    redis_url: str,
    brokers: dict[Config, str],
    home: Path,
) -> MoneyFigures:
    """Money on vs off: a server each, on twin databases seeded alike, rounds interleaved."""
    urls: dict[Config, str] = {}
    engines: dict[Config, Engine] = {}
    with console.status("creating and migrating the money-on and money-off databases…"):
        for config in CONFIGS:
            name = f"souk_money_{config}"
            create_database(dsn, name)
            urls[config] = database_url_named(database_url, name)
            upgrade_database(urls[config])
            engines[config] = create_db_engine(
                urls[config], pool_size=2, application_name="souk-bench-money"
            )
    postgres = postmaster_pid(dsn)
    try:
        with contextlib.ExitStack() as servers:
            base: dict[Config, str] = {}
            meters: dict[Config, CpuMeter] = {}
            for n, config in enumerate(CONFIGS):
                env = {
                    **server_environment(
                        settings, urls[config], redis_url_db(redis_url, n + 1), brokers[config]
                    ),
                    "SOUK_HTTP_WORKERS": str(args.workers),
                    **money_environment(config),
                }
                url, pid = servers.enter_context(
                    server(env, home / f"serve-money-{config}.log", relay=True)
                )
                base[config] = url
                meters[config] = CpuMeter({"server": [pid], "postgres": [postgres]})
            return _money_rounds(args, settings, base, meters, engines)
    finally:
        for engine in engines.values():
            engine.dispose()


def _money_rounds(
    args: argparse.Namespace,
    settings: Settings,
    base: dict[Config, str],
    meters: dict[Config, CpuMeter],
    engines: dict[Config, Engine],
) -> MoneyFigures:
    token = admin_token(settings)
    skus: dict[Config, list[str]] = {}
    steady: dict[Config, list[Account]] = {}
    with console.status("seeding both catalogs alike and creating the accounts…"):
        for config in CONFIGS:
            catalog = seed(base[config], token, args.products, 1_000_000, 11)
            skus[config] = [s.sku for p in catalog.products for s in p.skus]
            steady[config] = new_accounts(base[config], args.clients)
    with console.status(f"warming up both servers ({args.clients} clients, 2 s each)…"):
        for config in CONFIGS:
            run_round(base[config], skus[config], new_accounts(base[config], args.clients), 2.0)

    def backlog() -> int:
        return invoice_progress(engines["on"]).backlog

    def settled() -> bool:
        # Nothing left to relay on either side and every paid "on" order invoiced: no
        # catching up runs on the machine during the next round.
        return all(unpublished_events(e) == 0 for e in engines.values()) and backlog() == 0

    order = schedule(args.money_pairs)
    # Lags are of the measured rounds' orders only (the warm-up's waited for the consumer
    # to join its group).
    since = database_now(engines["on"])
    rounds: dict[Config, list[Round]] = {"on": [], "off": []}
    at_end: list[int] = []
    drain: list[float | None] = []
    for n, config in enumerate(order):
        with console.status("waiting for the relays and the invoicing consumer…"):
            if not wait_until(settled, args.drain_timeout)[0]:
                console.print(f"[yellow]not settled after {args.drain_timeout:.0f} s")
        with console.status(
            f"money {config}: round {n + 1} of {len(order)}, {args.clients} clients, "
            f"{args.money_seconds:.0f} s…"
        ):
            # The same seed for both rounds of a pair: the same SKUs in the same order.
            result = run_round(
                base[config],
                skus[config],
                steady[config],
                args.money_seconds,
                meter=meters[config],
                seed=n // 2 + 1,
            )
        rounds[config].append(result)
        if config == "on":
            at_end.append(backlog())
            with console.status("waiting for the invoices to catch up…"):
                caught_up, waited = wait_until(lambda: backlog() == 0, args.drain_timeout)
            drain.append(waited if caught_up else None)
    on_engine = engines["on"]
    with console.status("checking the ledger…"):
        progress = invoice_progress(on_engine)
        return MoneyFigures(
            schedule=order,
            seconds=args.money_seconds,
            rounds=rounds,
            traces={config: money_trace(engines[config]) for config in CONFIGS},
            paid_orders=progress.paid,
            invoices=invoices_issued(on_engine),
            invoice_backlog=progress.backlog,
            backlog_at_round_end=at_end,
            drain_s=drain,
            invoice_lags_s=invoice_lags_s(on_engine, since),
            ledger_violations=ledger_violations(on_engine),
        )


def _print_money(args: argparse.Namespace, money: MoneyFigures) -> None:
    on, off = money.side("on"), money.side("off")
    table = Table(
        title=f"Money on (tax, ledger, invoices) vs off: {args.clients} clients, "
        f"{len(money.schedule)} rounds of {money.seconds:.0f} s ({' '.join(money.schedule)})"
    )
    table.add_column("measure")
    table.add_column("money on", justify="right")
    table.add_column("money off", justify="right")
    table.add_column("on ÷ off", justify="right")
    table.add_row(
        "[bold]orders/s",
        f"[bold]{on.orders_per_s:,.1f}",
        f"[bold]{off.orders_per_s:,.1f}",
        f"[bold]{ratio_text(on.orders_per_s, off.orders_per_s)}",
    )
    table.add_row(
        "  per round",
        " · ".join(f"{r.orders_per_s:,.0f}" for r in money.rounds["on"]),
        " · ".join(f"{r.orders_per_s:,.0f}" for r in money.rounds["off"]),
        "",
    )
    for label, q in (("checkout p50", 0.5), ("checkout p99", 0.99)):
        on_ms, off_ms = percentile(on.checkout_ms, q), percentile(off.checkout_ms, q)
        table.add_row(label, f"{on_ms:,.1f} ms", f"{off_ms:,.1f} ms", ratio_text(on_ms, off_ms))
    table.add_row("add to cart p50 / p99", _p50_p99(on.add_ms), _p50_p99(off.add_ms), "")
    on_cpu, off_cpu = on.cpu_ms_per_order(), off.cpu_ms_per_order()
    for side in on_cpu:
        table.add_row(
            f"CPU per order: {side.replace('_', ' ')}",
            f"{on_cpu[side]:.2f} ms",
            f"{off_cpu.get(side, 0.0):.2f} ms",
            ratio_text(on_cpu[side], off_cpu.get(side, 0.0)),
        )
    table.add_row(
        "orders / 5xx", f"{on.orders} / {on.five_xx}", f"{off.orders} / {off.five_xx}", ""
    )
    for what, label in (
        ("taxed_lines", "order lines taxed"),
        ("ledger_transactions", "ledger transactions"),
        ("invoices", "invoices"),
    ):
        table.add_row(
            f"in the database: {label}",
            f"{money.traces['on'].summary()[what]:,}",
            f"{money.traces['off'].summary()[what]:,}",
            "",
        )
    console.print(table)
    drains = " · ".join("timed out" if s is None else f"{s:.1f}" for s in money.drain_s)
    console.print(
        f"invoicing consumer: {money.invoices:,} invoices for {money.paid_orders:,} paid orders "
        f"({money.invoice_backlog} left); at each round's end {money.backlog_at_round_end} "
        f"uninvoiced, caught up in {drains} s; lag paid → invoice p50 "
        f"{percentile(money.invoice_lags_s, 0.5):.2f} s / p99 "
        f"{percentile(money.invoice_lags_s, 0.99):.2f} s; 'on' counting that catch-up: "
        f"{money.sustained_on_per_s:,.1f} orders/s"
    )
    if money.ledger_violations:
        console.print(
            f"[red]souk ledger check: FAILED[/red], {len(money.ledger_violations)} violations"
        )
        for detail in money.ledger_violations[:5]:
            console.print(f"  {detail}")
    else:
        console.print("souk ledger check on the money-on database: [green]passed[/green]")
    for config in CONFIGS:
        for what, count in money.side(config).other_failures.most_common():
            console.print(f"[yellow]money {config} failures:[/yellow] {what} x {count}")
    if not money.configs_honoured:
        console.print("[red]the switches were not honoured (see the database counts)")
    verdict = "[green]OK[/green]" if money.ok else "[red]FAILED[/red]"
    console.print(f"money comparison {verdict}")


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
