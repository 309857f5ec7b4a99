"""``souk simulate``: simulated shoppers against a running Souk server, with a summary table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from souk.seed import CatalogPlan, SeededCatalog, SeedFailed, discover_catalog, seed_catalog
from souk.settings import Settings, get_settings
from souk.simulation import SimulationConfig, SimulationReport, report_tables, run_simulation
from souk.simulation.model import with_money
from souk.simulation.runner import UpiPayer
from souk.synthetic import SyntheticWorld
from transactional.shared.auth import ADMIN, JwtTokens, Principal

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def admin_token(settings: Settings, ttl_s: int = 3600) -> str:
    """An admin bearer token signed with this installation's secret (as `souk token --admin`)."""
    token, _ = JwtTokens(settings.jwt_secret, ttl_s=ttl_s).issue(
        Principal("admin", settings.region, frozenset({ADMIN}))
    )
    return token


def write_labels(path: Path, report: SimulationReport) -> None:
    """Write the fraud ground truth (one JSON object per fraud-like session) to ``path``."""
    with path.open("w") as out:
        for label in report.fraud_labels:
            out.write(
                json.dumps(
                    {
                        "session": label.session,
                        "customer_id": label.customer_id,
                        "kinds": list(label.kinds),
                        "order_ids": label.order_ids,
                    }
                )
                + "\n"
            )


def simulate(
    users: Annotated[int, typer.Option(min=1, help="Distinct shopper accounts.")] = 20,
    rate: Annotated[float, typer.Option(min=0.01, help="Sessions started per second.")] = 2.0,
    duration: Annotated[
        float, typer.Option(min=0.1, help="Seconds during which sessions start.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same decisions).")] = 7,
    base_url: Annotated[
        str, typer.Option(help="The Souk server (`souk serve`).")
    ] = "http://127.0.0.1:8000",
    products: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seed this many products first (0: shop what the server lists, "
            "seeding 40 if it lists none).",
        ),
    ] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Concurrent sessions at most.")] = 16,
    fraud_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of fraud-like sessions.")
    ] = 0.04,
    labels: Annotated[
        Path | None, typer.Option(help="Write the fraud labels (JSON lines) to this file.")
    ] = None,
    money: Annotated[
        bool,
        typer.Option(
            help="Pay with every method of each region's mix (wallet top-ups, split, EMI, "
            "3-D Secure, UPI in India) and return some delivered orders; --no-money: cards only."
        ),
    ] = True,
) -> None:
    """Simulate shoppers browsing, buying, cancelling (and a few fraudsters) over the HTTP API."""
    settings = get_settings()
    try:
        catalog = _catalog(settings, base_url, products, seed)
        config = SimulationConfig(
            users=users,
            rate=rate,
            duration=duration,
            seed=seed,
            workers=workers,
            fraud_share=fraud_share,
            regions=tuple(r for r in settings.regions if r in ("eu", "us", "in")) or ("eu",),
            region_weights=tuple(
                {"eu": 0.5, "us": 0.3, "in": 0.2}[r]
                for r in settings.regions
                if r in ("eu", "us", "in")
            )
            or (1.0,),
        )
        if money:
            config = with_money(config)
        with upi_payers(settings) as payer:
            report = run_simulation(
                base_url,
                catalog,
                config,
                console=console,
                admin_token=admin_token(settings) if money else None,
                upi_payer=payer,
            )
    except (SeedFailed, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err_console.print(
            f"[red]error:[/red] cannot reach {escape(base_url)} ({escape(str(exc))}): "
            "start it with `souk serve`"
        )
        raise typer.Exit(1) from None
    for table in report_tables(report):
        console.print(table)
    for sample in report.samples:
        err_console.print(f"[yellow]sample:[/yellow] {escape(sample)}")
    if labels is not None:
        write_labels(labels, report)
        console.print(f"fraud labels written to {labels}")
    if not report.ok:
        err_console.print(
            "[red]error:[/red] the simulation saw server errors, transport errors, unexpected "
            "answers or inconsistent replays: see the tables above"
        )
        raise typer.Exit(1)


@contextmanager
def upi_payers(settings: Settings) -> Iterator[UpiPayer | None]:
    """The UPI sandbox's payers on this installation's database (None, with a note, when
    the database is not reachable: UPI collects then stay waiting)."""
    from souk.async_payments_wiring import upi_sandbox
    from souk.stack.endpoints import resolve_url
    from souk.stack.errors import StackError
    from transactional.shared.db import create_db_engine

    try:
        database_url = resolve_url(settings, "postgres")
    except StackError as exc:
        err_console.print(f"[yellow]no UPI payers[/yellow] ({escape(str(exc))})")
        yield None
        return
    engine = create_db_engine(database_url, pool_size=2, application_name="souk-simulate")
    try:
        yield upi_sandbox(settings, engine, lambda: datetime.now(UTC))
    finally:
        engine.dispose()


def _catalog(settings: Settings, base_url: str, products: int, seed: int) -> SeededCatalog:
    """A fresh seed when asked (or when the server lists nothing), else what the server lists."""
    if products == 0:
        found = discover_catalog(base_url, seed=seed)
        if found is not None:
            console.print(f"shopping the {len(found.products)} products {base_url} lists")
            return found
        products = 40
    console.print(f"seeding {products} products through {base_url}…")
    return seed_catalog(
        base_url,
        admin_token(settings),
        SyntheticWorld(list(settings.regions), seed),
        CatalogPlan(sellers=max(2, products // 10), products=products),
    )
