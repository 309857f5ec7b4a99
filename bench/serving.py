"""Benchmark: the serving endpoints' latency and rate over HTTP, beside a bare Litestar endpoint.

    python -m bench.serving [--products 200000] [--queries 50000] [--rec-items 20000]
        [--users 1000] [--clients 1,4] [--seconds 8] [--seed 7] [--json FILE]

Starts a private PostgreSQL and Valkey in a temporary folder, loads one generated catalog
into everything the serving layer reads (``bench/serving_data.py``: the tantivy index, cached
under ``SOUK_HOME/bench/`` per (products, seed); the catalog tables; stock counters; past
searches; a promoted ALS + FAISS model over the first ``--rec-items`` products; Feast fraud
signals and a promoted fraud model), then serves, each in its own process on the same
uvicorn setup (``bench/serving_server.py``):

- the **baseline**: a bare Litestar app answering ``GET /ping`` with a small JSON (and
  ``/ping-thread``, the same from a handler thread);
- **Souk**: the app `souk serve` serves, over ``build_services``.

For each client count, every endpoint gets a round of closed-loop keep-alive clients
(``bench/serving_load.py``): search in one region and across all (``region=all``), suggest,
similar, for-you and fraud score. p50/p99, requests/s, the server's CPU per request, and
ratios to the baseline of the same client count and to the issue's targets (search p99
<= 10 ms, suggest <= 5 ms, recommendations <= 15 ms). Rate limits stay on: loopback is
exempt by default, as for every local client.

Exits 1 if any request failed (non-2xx, 5xx, broken connection) or a sanity check of the
answers failed (hits found, the promoted models used). ``--json FILE`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

from bench import serving_data as data
from bench.cpu import tree_cpu_s
from bench.serving_load import (
    TARGETS_P99_MS,
    RequestMaker,
    Round,
    for_you_request,
    fraud_request,
    meets,
    run_round,
    search_request,
    similar_request,
    suggest_request,
)
from bench.serving_profile import InProcess, service_calls, time_in_process
from souk.settings import Settings
from souk.simulate_cli import admin_token
from souk.simulation import server_environment
from souk.simulation.server import free_port
from souk.stack import Stack
from souk.stack.homes import temporary_home
from transactional.shared.db import libpq_dsn
from transactional.shared.migrations import upgrade_database

# Wide enough for the table when the output goes to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 150)
HOST = "127.0.0.1"
BASELINE = "baseline"


@dataclass(frozen=True)
class Endpoint:
    """One measured endpoint: its name, how to make its requests, whether it needs a token."""

    name: str
    label: str
    make: RequestMaker
    admin: bool = False

    @property
    def target_ms(self) -> float | None:
        """The issue's p99 target, if it sets one."""
        return TARGETS_P99_MS.get(self.name)


@dataclass
class Figures:
    """Everything one run measured."""

    setup: list[data.Timed]
    rounds: list[Round]
    checks: dict[str, bool]
    details: dict[str, Any] = field(default_factory=dict)
    in_process: dict[str, InProcess] = field(default_factory=dict)

    def baseline(self, clients: int, name: str = BASELINE) -> Round | None:
        """The baseline round with ``clients`` clients."""
        return next((r for r in self.rounds if r.endpoint == name and r.clients == clients), None)

    @property
    def failures(self) -> int:
        """Failed requests over every round."""
        return sum(r.failures for r in self.rounds)

    @property
    def ok(self) -> bool:
        """No failed request and every sanity check passed."""
        return self.failures == 0 and all(self.checks.values())

    def report(self) -> dict[str, Any]:
        """The figures, keyed by what they measure."""
        rounds = []
        for r in self.rounds:
            base = None if r.endpoint.startswith(BASELINE) else self.baseline(r.clients)
            rounds.append(r.summary(base, TARGETS_P99_MS.get(r.endpoint)))
        return {
            **self.details,
            "setup_s": {t.step: round(t.seconds, 2) for t in self.setup},
            "rounds": rounds,
            "in_process": [timed.summary() for timed in self.in_process.values()],
            "targets_p99_ms": TARGETS_P99_MS,
            "checks": self.checks,
            "failures": self.failures,
            "ok": self.ok,
        }


def endpoints(
    past: Sequence[str], rec_products: Sequence[str], customers: Sequence[str]
) -> list[Endpoint]:
    """The measured endpoints with their request makers."""
    return [
        Endpoint("search", "search, one region", partial(search_request, region=None)),
        Endpoint("search_all", "search, region=all", partial(search_request, region="all")),
        Endpoint("suggest", "suggest", partial(suggest_request, texts=past)),
        Endpoint(
            "similar",
            "similar",
            partial(similar_request, product_ids=rec_products),
        ),
        Endpoint(
            "for_you",
            "for-you",
            partial(for_you_request, customers=customers),
            admin=True,
        ),
        Endpoint("fraud", "fraud score", partial(fraud_request, customers=customers), admin=True),
    ]


@contextlib.contextmanager
def server_process(
    app: str, env: Mapping[str, str], log: Path, timeout_s: float, ready_path: str
) -> Iterator[tuple[int, int]]:
    """``python -m bench.serving_server <app>`` in a child process: (port, pid)."""
    port = free_port()
    command = [sys.executable, "-m", "bench.serving_server", app, "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
                raise RuntimeError(f"{app} server exited ({process.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}{ready_path}", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} server not ready after {timeout_s:.0f} s ({log})")
            time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sanity_checks(port: int, token: str, product: str, customer: str) -> dict[str, bool]:
    """One answer of each endpoint looked at: found something, used the promoted models."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as http:
        search = http.get("/v1/search", params={"q": "wireles hedphones", "region": "all"}).json()
        suggest = http.get("/v1/suggest", params={"q": "sony", "region": "eu"}).json()
        similar = http.get(f"/v1/recommendations/similar/{product}").json()
        for_you = http.get(
            "/v1/recommendations/for-you", params={"customer_id": customer}, headers=headers
        ).json()
        fraud = http.post(
            "/v1/fraud/score",
            json={"customer_id": customer, "amount_minor": 4999, "currency": "EUR"},
            headers=headers,
        ).json()
    return {
        "search finds the misspelled query": search.get("total", 0) > 0,
        "suggest completes a prefix": bool(suggest.get("suggestions")),
        "similar from the promoted FAISS index": similar.get("model") == "item_vectors"
        and bool(similar.get("items")),
        "for-you from the promoted ALS": for_you.get("model") == "als"
        and bool(for_you.get("items")),
        "fraud score uses Feast signals and the model": bool(fraud.get("model_version"))
        and bool(fraud.get("reasons", {}).get("signals_available")),
    }


def prepare(
    args: argparse.Namespace, settings: Settings, dsn: str, redis_url: str
) -> tuple[list[data.Timed], list[str], list[str], dict[str, Any]]:
    """Every read model the serving layer needs: (timings, past searches, rec products, details)."""
    steps: list[data.Timed] = []
    cache = data.cache_dir(Settings(), args.products, args.seed)  # the invoking SOUK_HOME
    began = time.perf_counter()
    with console.status(f"search index of {args.products:,} products ({cache})…"):
        if args.no_cache:
            shutil.rmtree(cache, ignore_errors=True)
        built = data.cached_search_index(cache, args.products, args.seed)
        data.link_tree(cache, settings.state_dir / "search")
    data.timed(steps, "search index built" if built else "search index from cache", began)
    began = time.perf_counter()
    with console.status("catalog into PostgreSQL (COPY)…"):
        docs = data.corpus_docs(args.products, args.seed)
        data.load_catalog(dsn, docs)
    data.timed(steps, "catalog tables", began)
    rec_docs = docs[: args.rec_items]
    client = redis.Redis.from_url(redis_url)
    began = time.perf_counter()
    with console.status("stock counters and past searches into Redis…"):
        data.load_stock_counters(client, rec_docs)
        past = data.past_queries(args.queries, args.seed)
        data.load_past_queries(client, past)
    client.close()
    data.timed(steps, "redis: counters + past searches", began)
    began = time.perf_counter()
    with console.status(f"ALS + FAISS over {len(rec_docs):,} products…"):
        als, vectors = data.promote_recommendations(
            settings, [d.product_id for d in rec_docs], args.users
        )
    data.timed(steps, "ALS + FAISS promoted", began)
    began = time.perf_counter()
    with console.status("Feast fraud signals and a fraud model…"):
        data.load_fraud_signals(settings, redis_url, args.users, args.seed)
        fraud = data.promote_fraud_model(settings, args.seed)
    data.timed(steps, "Feast signals + fraud model", began)
    texts = [text for _, text, _ in past] + sorted({d.title.lower() for d in docs})
    details = {
        "products": args.products,
        "past_searches": len(past),
        "rec_items": len(rec_docs),
        "users": args.users,
        "model_versions": {"als": als, "item_vectors": vectors, "fraud": fraud},
    }
    return steps, texts, [d.product_id for d in rec_docs], details


def measure(
    args: argparse.Namespace, settings: Settings, database_url: str, redis_url: str
) -> Figures:
    """Prepare the data, then every round, baseline first, in one run."""
    steps, texts, rec_products, details = prepare(
        args, settings, libpq_dsn(database_url), redis_url
    )
    customers = data.customer_ids(args.users)
    env = server_environment(settings, database_url, redis_url)
    home = settings.state_dir
    token = admin_token(settings)
    rounds: list[Round] = []
    clients = [int(c) for c in args.clients.split(",")]
    with server_process(BASELINE, env, home / "baseline.log", 60, "/ping") as (port, pid):
        for count in clients:
            for name, path in ((BASELINE, "/ping"), (f"{BASELINE}_thread", "/ping-thread")):
                ping: RequestMaker = partial(lambda _rng, p: ("GET", p, None), p=path)
                run_round(HOST, port, name, ping, count, 1.0)  # warm-up
                with console.status(f"{name}: {count} client(s), {args.seconds:.0f} s…"):
                    rounds.append(
                        run_round(
                            HOST,
                            port,
                            name,
                            ping,
                            count,
                            args.seconds,
                            cpu=partial(tree_cpu_s, pid),
                        )
                    )
    began = time.perf_counter()
    console.print("starting the Souk server (it builds the suggest index first)…")
    with server_process("souk", env, home / "souk.log", 600, "/health") as (port, pid):
        data.timed(steps, "souk server ready", began)
        checks = sanity_checks(port, token, rec_products[0], customers[0])
        admin = {"Authorization": f"Bearer {token}"}
        for endpoint in endpoints(texts, rec_products, customers):
            headers = admin if endpoint.admin else None
            run_round(
                HOST, port, endpoint.name, endpoint.make, 2, args.warmup, headers=headers, seed=99
            )
            for count in clients:
                with console.status(f"{endpoint.label}: {count} client(s), {args.seconds:.0f} s…"):
                    rounds.append(
                        run_round(
                            HOST,
                            port,
                            endpoint.name,
                            endpoint.make,
                            count,
                            args.seconds,
                            headers=headers,
                            seed=count,
                            cpu=partial(tree_cpu_s, pid),
                        )
                    )
    details["labels"] = {e.name: e.label for e in endpoints(texts, rec_products, customers)}
    figures = Figures(steps, rounds, checks, details)
    if args.in_process_seconds > 0:
        figures.in_process = in_process(
            args, settings, database_url, redis_url, texts, rec_products
        )
    return figures


def in_process(
    args: argparse.Namespace,
    settings: Settings,
    database_url: str,
    redis_url: str,
    texts: Sequence[str],
    rec_products: Sequence[str],
) -> dict[str, InProcess]:
    """Each endpoint's service called directly (same requests, no HTTP), the server stopped."""
    from souk.services import build_services

    services = build_services(settings, database_url=database_url, redis_url=redis_url)
    try:
        with console.status("in-process: warming the suggest index…"):
            services["suggest"].warm()
        calls = service_calls(services)
        out: dict[str, InProcess] = {}
        for endpoint in endpoints(texts, rec_products, data.customer_ids(args.users)):
            with console.status(f"in-process: {endpoint.label}…"):
                out[endpoint.name] = time_in_process(
                    endpoint.name,
                    endpoint.make,
                    calls[endpoint.name],
                    args.in_process_seconds,
                    profile=args.profile,
                )
        return out
    finally:
        services.close()


def main() -> None:
    """Run the benchmark and print the figures beside the baseline and the targets."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=200_000, help="generated products")
    parser.add_argument("--queries", type=int, default=50_000, help="past searches (suggest)")
    parser.add_argument("--rec-items", type=int, default=20_000, help="products in the ALS model")
    parser.add_argument("--users", type=int, default=1_000, help="customers (ALS, Feast)")
    parser.add_argument("--clients", default="1,4", help="client counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each round")
    parser.add_argument("--warmup", type=float, default=1.5, help="warm-up per endpoint (s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--in-process-seconds",
        type=float,
        default=3.0,
        help="time each service called directly, no HTTP (0: skip)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the in-process calls: hot spots"
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild the cached index")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    started = time.perf_counter()
    home = temporary_home("souk-bench-serving-")
    settings = Settings(home=home, regions=list(data.REGIONS))
    stack = Stack(settings)
    try:
        with console.status("starting PostgreSQL and Valkey…"):
            database_url = stack.up_component("postgres")
            redis_url = stack.up_component("redis")
            upgrade_database(database_url)
        figures = measure(args, settings, database_url, redis_url)
    finally:
        stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)
    figures.details["wall_s"] = round(time.perf_counter() - started, 1)
    print_figures(args, figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures.report(), indent=2) + "\n")
        console.print(f"figures written to {args.json}")
    raise SystemExit(0 if figures.ok else 1)


def _in_process(timed: InProcess | None) -> str:
    return "" if timed is None else f"{_ms(timed.p50_ms)} / {_ms(timed.p99_ms)}"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:,.2f}"


def print_figures(args: argparse.Namespace, figures: Figures) -> None:
    """The rich table: one row per endpoint and client count."""
    table = Table(
        title=f"Serving over HTTP on loopback: {args.products:,} products, "
        f"{args.seconds:.0f} s rounds, closed-loop keep-alive clients"
    )
    for column in ("endpoint", "clients", "p50 ms", "p99 ms", "req/s", "server CPU ms/req"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    table.add_column("vs baseline: p99 x, req/s share", justify="right")
    table.add_column("p99 target", justify="right")
    table.add_column("in-process p50 / p99 ms", justify="right")
    labels: dict[str, str] = figures.details.get("labels", {})
    labels.update(
        {
            BASELINE: "baseline: bare Litestar",
            f"{BASELINE}_thread": "  baseline on a thread",
        }
    )
    for r in figures.rounds:
        base = None if r.endpoint.startswith(BASELINE) else figures.baseline(r.clients)
        target = TARGETS_P99_MS.get(r.endpoint)
        verdict = meets(r.p99_ms, target)
        target_text = (
            ""
            if target is None
            else (f"[{'green' if verdict else 'red'}]{target:.0f} ms {'yes' if verdict else 'no'}")
        )
        versus = (
            "1.00"
            if base is None
            else (
                f"{r.p99_ms / base.p99_ms:.1f}x / {r.per_s / base.per_s:.2f}" if base.per_s else "-"
            )
        )
        cpu = r.server_cpu_ms_per_request
        table.add_row(
            labels.get(r.endpoint, r.endpoint),
            str(r.clients),
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            f"{r.per_s:,.0f}",
            "-" if cpu is None else f"{cpu:.2f}",
            versus,
            target_text,
            _in_process(figures.in_process.get(r.endpoint)),
        )
    console.print(table)
    for timed in figures.in_process.values():
        if timed.hot_spots:
            spots = "; ".join(f"{name} {ms:.2f}" for name, ms in timed.hot_spots)
            console.print(f"[bold]{timed.endpoint}[/bold] hot spots (ms per call): {spots}")
    console.print("setup: " + ", ".join(f"{t.step} {t.seconds:.1f} s" for t in figures.setup))
    for name, passed in figures.checks.items():
        console.print(f"check: {name}: {'[green]yes' if passed else '[red]NO'}")
    for r in figures.rounds:
        bad = {s: c for s, c in r.statuses.items() if not 200 <= s < 300}
        if bad or r.errors:
            console.print(f"[yellow]{r.endpoint} ({r.clients}):[/yellow] {bad} {dict(r.errors)}")
    outcome = "[green]OK[/green]" if figures.ok else "[red]FAILED[/red]"
    console.print(f"bench {outcome}: {figures.failures} failed requests")


if __name__ == "__main__":
    main()
