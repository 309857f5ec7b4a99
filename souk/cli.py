"""The ``souk`` command line: local stack, topics, relay and the demo."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.registry import SchemaError
from souk.features_cli import features_app
from souk.inventory_cli import inventory_app
from souk.jobs_cli import jobs_app
from souk.lake_cli import lake_app
from souk.logging import configure_logging
from souk.models_cli import models_app
from souk.pipelines_cli import pipelines_app
from souk.recommendations_cli import recommendations_app
from souk.search_cli import search_app
from souk.settings import get_settings
from souk.simulate_cli import simulate
from souk.stack import commands as stack_commands
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from souk.stack.urls import redact_url
from souk.suggest_cli import suggest_app
from transactional.shared.errors import SoukError, StoreUnavailable

app = typer.Typer(
    name="souk",
    help="Souk: e-commerce as a stream-processing data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line

app.command("up")(stack_commands.up)
app.command("down")(stack_commands.down)
app.command("status")(stack_commands.status)
app.add_typer(inventory_app, name="inventory", help="Stock: reconcile Redis with PostgreSQL.")
app.add_typer(pipelines_app, name="pipelines", help="Streaming jobs: run, start, stop, status.")
app.add_typer(features_app, name="features", help="Feature store: apply, list and read signals.")
app.add_typer(
    jobs_app, name="jobs", help="Batch jobs: list, run, schedule, history, export to Airflow."
)
app.add_typer(models_app, name="models", help="Models: registry, promote, rollback, evaluation.")
app.add_typer(lake_app, name="lake", help="Lake: archive topics to Delta, list tables, history.")
app.add_typer(search_app, name="search", help="Search: reindex, versions, rollback.")
app.add_typer(suggest_app, name="suggest", help="Autosuggest: show completions, run the consumer.")
app.add_typer(
    recommendations_app,
    name="recommendations",
    help="Recommendations: click-through per model version, a customer's list, the consumer.",
)
# --- analytics ---
from souk.analytics_cli import analytics_app  # noqa: E402 - kept inside this block

app.add_typer(analytics_app, name="analytics", help="Analytics: load, query, metrics.")
# money (issue 12): each block is edited only by its owner
# --- payments ---
from souk.payments_cli import payments_app  # noqa: E402 - kept inside this block

app.add_typer(payments_app, name="payments", help="Payments: the sandbox providers (UPI payers).")
# --- vault ---
from souk.vault_cli import vault_app  # noqa: E402 - kept inside this block

app.add_typer(vault_app, name="vault", help="Card vault: KEK rotation and status.")
# --- ledger ---
from souk.ledger_cli import ledger_app  # noqa: E402 - kept inside this block

app.add_typer(ledger_app, name="ledger", help="Ledger: invariants check, seller payouts.")
# --- billing ---
from souk.billing_cli import billing_app  # noqa: E402 - kept inside this block

app.add_typer(billing_app, name="billing", help="Billing: invoice PDFs, the invoicing consumer.")
# --- returns ---
app.command("simulate")(simulate)


def fail(message: str) -> typer.Exit:
    """Print a one-line error in red; the caller raises the returned Exit."""
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


@app.command("topics")
def topics(
    create: Annotated[
        bool, typer.Option(help="Create the planned topics that are missing.")
    ] = True,
) -> None:
    """List the event topics (creating missing ones) with their partition counts."""
    from souk.topics import ensure_topics, planned_topics
    from transactional.shared.kafka import existing_topics

    settings = get_settings()
    try:
        bootstrap = resolve_url(settings, "kafka")
        created = ensure_topics(settings, bootstrap) if create else []
        present = existing_topics(bootstrap)
    except (StackError, SoukError) as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"Topics at {bootstrap}")
    table.add_column("topic")
    table.add_column("partitions", justify="right")
    table.add_column("state")
    for name in planned_topics(settings):
        state = "created" if name in created else ("present" if name in present else "missing")
        table.add_row(name, str(present.get(name, "-")), state)
    console.print(table)


@app.command("relay")
def relay(
    once: Annotated[bool, typer.Option(help="Drain the outbox once and exit.")] = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Publish committed outbox rows to Kafka until stopped (SIGTERM/SIGINT)."""
    from souk.wiring import build_relay

    configure_logging(log_level)
    settings = get_settings()
    try:
        database_url = resolve_url(settings, "postgres")
        bootstrap = resolve_url(settings, "kafka")
        relay_ = build_relay(settings, database_url, bootstrap)
    except StoreUnavailable as exc:
        reason = " ".join(str(exc.__cause__ or exc).split())
        raise fail(
            f"PostgreSQL at {redact_url(database_url)} is unreachable ({reason}): "
            "run `souk up` or fix SOUK_DATABASE_URL"
        ) from None
    except (StackError, SoukError) as exc:
        raise fail(str(exc)) from None
    if once:
        try:
            published = relay_.drain()
        except SoukError as exc:
            raise fail(str(exc)) from None
        finally:
            relay_.close()
        console.print(f"relayed {published} events")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err_console.print(f"relay: outbox at {redact_url(database_url)} → kafka {bootstrap}")
    relay_.run(
        stop,
        poll_interval_s=settings.relay_poll_interval_s,
        retention_s=settings.outbox_retention_hours * 3600,
    )
    relay_.close()


@app.command("republish")
def republish(
    since: Annotated[
        datetime | None,
        typer.Option(help="Only rows published at or after this UTC time (default: all kept)."),
    ] = None,
) -> None:
    """Queue already-published outbox rows again, for a broker that lost its data."""
    from souk.topics import planned_topics
    from transactional.shared.outbox_store import PostgresOutboxStore

    settings = get_settings()
    try:
        store = PostgresOutboxStore(resolve_url(settings, "postgres"))
        try:
            count = store.republish(
                planned_topics(settings), since.replace(tzinfo=UTC) if since else None
            )
        finally:
            store.close()
    except (StackError, SoukError) as exc:
        raise fail(str(exc)) from None
    console.print(f"{count} events queued again; a running `souk relay` publishes them")


@app.command("demo")
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the local stack running afterwards.")] = False,
    customers: Annotated[
        int, typer.Option(min=1, help="Shopper accounts the simulation may register.")
    ] = 500,
    products: Annotated[int, typer.Option(min=1, help="Products seeded through the API.")] = 300,
    events: Annotated[
        int, typer.Option(min=0, help="Behaviour events to aim for (sets the shopping time).")
    ] = 5000,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Shopper sessions started per second.")
    ] = 6.0,
    duration: Annotated[
        float | None, typer.Option(help="Shopping time in seconds (default: from --events).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
) -> None:
    """Stack up, serve the APIs, seed a catalog, simulate shoppers, check invariants, summarise."""
    from souk.demo import run_demo

    configure_logging("WARNING")
    try:
        report = run_demo(
            get_settings(),
            keep=keep,
            customers=customers,
            products=products,
            events=events,
            seed=seed,
            console=console,
            rate=rate,
            duration=duration,
        )
    except (StackError, SoukError, SchemaError) as exc:
        raise fail(str(exc)) from None
    if not report.ok:
        raise fail("an invariant failed: " + "; ".join(report.failures))


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (SOUK_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (SOUK_HTTP_PORT).")] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(help="Serve only this domain (repeatable); default: all of them."),
    ] = None,
    relay: Annotated[bool, typer.Option(help="Also run the outbox relay in this process.")] = True,
    archive: Annotated[
        bool,
        typer.Option(help="Also archive every topic into the lake (`souk up` already runs one)."),
    ] = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
) -> None:
    """Serve the storefront, seller and admin APIs (OpenAPI at /schema) until stopped."""
    from souk.serve import serve as run

    configure_logging(log_level)
    settings = get_settings()
    host = host or settings.http_host
    port = settings.http_port if port is None else port
    err_console.print(f"serving on http://{host}:{port} (OpenAPI: /schema/openapi.json)")
    try:
        run(
            settings,
            host=host,
            port=port,
            domains=domain,
            relay=relay,
            archive=archive,
            log_level=log_level.lower(),
        )
    except (StackError, SoukError, ValueError) as exc:
        raise fail(str(exc)) from None


@app.command("token")
def token(
    subject: Annotated[str, typer.Option(help="Customer id the token names.")] = "admin",
    admin: Annotated[bool, typer.Option(help="Grant the admin role.")] = False,
    service: Annotated[
        bool, typer.Option(help="Grant the service role (e.g. the fraud service's token).")
    ] = False,
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds.")] = None,
) -> None:
    """Print a signed bearer token (e.g. `souk token --admin` for the admin endpoints)."""
    from transactional.shared.auth import ADMIN, SERVICE, JwtTokens, Principal

    settings = get_settings()
    tokens = JwtTokens(settings.jwt_secret, ttl_s=ttl or settings.token_ttl_s)
    roles = frozenset({ADMIN} if admin else set()) | frozenset({SERVICE} if service else set())
    issued, _ = tokens.issue(Principal(subject, settings.region, roles))
    print(issued)


@app.command("schemas")
def schemas(
    check: Annotated[bool, typer.Option(help="Only check compatibility; write nothing.")] = False,
) -> None:
    """Export event JSON Schemas to schemas/json (or check them for backward compatibility)."""
    from schemas.compat import check_against, load_schema_dir
    from schemas.export import JSON_DIR, export_all

    if not check:
        for path in export_all(JSON_DIR):
            console.print(f"wrote {path}")
        return
    problems = check_against(load_schema_dir(JSON_DIR))
    for problem in problems:
        err_console.print(f"[red]incompatible:[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("all event schemas are backward compatible with schemas/json")


def main() -> None:
    """Entry point for ``python -m souk``."""
    app()


if __name__ == "__main__":
    main()
