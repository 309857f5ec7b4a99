"""``souk features …``: the Feast feature repository of the fraud signals (mounted by ``souk.cli``).

Feast takes seconds to import, so ``features.store`` is imported inside the commands only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from souk.stack.urls import redact_url

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

features_app = typer.Typer(
    name="features",
    help="Feature store: register, list and read the fraud signals (Feast on the stack's Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print a one-line error in red; the caller raises the returned Exit."""
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}")
    return typer.Exit(1)


def open_store() -> tuple[FeatureStore, str]:
    """The feature store of this SOUK_HOME on the stack's Redis, and that Redis URL."""
    from features.store import feature_store

    settings = get_settings()
    try:
        redis_url = resolve_url(settings, "redis")
        return feature_store(settings, redis_url), redis_url
    except StackError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # a Redis URL Feast cannot take
        raise fail(f"SOUK_REDIS_URL: {exc}") from None


@features_app.callback()
def features() -> None:
    """Feature store: register, list and read the fraud signals (Feast on the stack's Redis)."""
    # A callback keeps this a command group, whatever the number of commands.


@features_app.command("apply")
def apply_() -> None:
    """Register the entities and fraud feature views; print what changed."""
    from features.store import apply, repo_dir

    store, _ = open_store()
    try:
        changes = apply(store, get_settings())
    except Exception as exc:  # a broken registry file: one line, not a traceback
        raise fail(f"apply failed: {exc}") from None
    where = repo_dir(get_settings())
    if not changes:
        console.print(f"up to date: nothing to apply ({where})")
        return
    table = Table(title=f"Feature repository changes ({escape(str(where))})")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("change")
    for change in changes:
        color = "green" if change.action == "created" else "yellow"
        table.add_row(change.kind, escape(change.name), f"[{color}]{change.action}[/{color}]")
    console.print(table)
    console.print(f"applied {len(changes)} changes")


@features_app.command("list")
def list_() -> None:
    """List the registered entities and feature views with their features."""
    store, _ = open_store()
    try:
        entities = sorted(store.list_entities(allow_cache=True), key=lambda e: e.name)
        views = sorted(store.list_feature_views(allow_cache=True), key=lambda v: v.name)
    except Exception as exc:
        raise fail(f"cannot read the registry: {exc}") from None
    if not entities and not views:
        console.print("nothing registered: run `souk features apply`")
        return
    table = Table(title="Entities")
    table.add_column("entity")
    table.add_column("join key")
    table.add_column("description")
    for entity in entities:
        table.add_row(escape(entity.name), escape(entity.join_key), escape(entity.description))
    console.print(table)
    table = Table(title="Feature views")
    table.add_column("view")
    table.add_column("keys")
    table.add_column("ttl", justify="right")
    table.add_column("features")
    for view in views:
        features = "\n".join(f"{field.name}: {field.dtype}" for field in view.features)
        table.add_row(
            escape(view.name), escape(", ".join(view.join_keys)), _duration(view), escape(features)
        )
    console.print(table)


def _duration(view: FeatureView) -> str:
    """A view's TTL as ``2d``, ``6h`` or ``90s`` (``-`` for none)."""
    seconds = int(view.ttl.total_seconds()) if view.ttl else 0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s" if seconds else "-"


def parse_keys(pairs: list[str]) -> dict[str, str]:
    """``["customer_id=cus_1", "device_id=dev_9"]`` as one entity row; ValueError if malformed."""
    row: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE (e.g. customer_id=cus_1), got {pair!r}")
        if key in row:
            raise ValueError(f"{key} given twice")
        row[key] = value
    return row


@features_app.command("get")
def get(
    keys: Annotated[
        list[str], typer.Argument(help="Entity keys, e.g. customer_id=cus_1 device_id=dev_9.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the online values of every fraud view the given entity keys select."""
    from features.store import FeatureStoreError, online_signals

    try:
        row = parse_keys(keys)
    except ValueError as exc:
        raise fail(str(exc)) from None
    store, redis_url = open_store()
    try:
        signals = online_signals(store, [row])
    except FeatureStoreError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # Redis down or refusing: one line, not a traceback
        raise fail(f"cannot read the online store at {redact_url(redis_url)}: {exc}") from None
    values: dict[str, Any] = {name: column[0] for name, column in signals.items()}
    if as_json:
        print(json.dumps(values, indent=2, default=str))
        return
    table = Table(title="Online features of " + escape(" ".join(keys)))
    table.add_column("view")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in values.items():
        if name in row:
            continue
        view, _, feature = name.partition("__")
        table.add_row(view, feature, "[dim]-[/dim]" if value is None else escape(str(value)))
    console.print(table)
    missing = sum(1 for name, value in values.items() if name not in row and value is None)
    if missing:
        console.print(f"{missing} features have no value stored (nothing pushed within the TTL)")


@features_app.command("materialize")
def materialize_(
    full: Annotated[
        bool, typer.Option("--full", help="Reload every value still servable (e.g. after a flush).")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Reload every snapshot from this date (YYYY-MM-DD, UTC).")
    ] = None,
) -> None:
    """Snapshot the gold tables and load the batch feature views into the online store."""
    from datetime import date

    from features.jobs import materialize

    try:
        start = date.fromisoformat(since) if since is not None else None
    except ValueError:
        raise fail(f"--since must be a date like 2025-01-31, not {since!r}") from None
    try:
        result = materialize(get_settings(), full=full, since=start)
    except StackError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a missing gold column, Redis down: one line, not a traceback
        raise fail(f"materialize failed: {exc}") from None
    console.print(escape(result.summary()))
