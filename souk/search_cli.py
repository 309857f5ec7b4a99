"""``souk search …``: rebuild, list and roll back the search index versions (mounted by souk.cli).

Swaps and rollbacks take effect in running servers without a restart: they read the current
version per search.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings
from souk.stack.errors import StackError

search_app = typer.Typer(
    name="search",
    help="Search index: reindex from PostgreSQL, list versions, roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

RegionOption = Annotated[
    list[str] | None,
    typer.Option("--region", help="A region (repeatable); default: every SOUK_REGIONS region."),
]


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _regions(chosen: list[str] | None) -> list[str]:
    settings = get_settings()
    regions = [r.lower() for r in chosen] if chosen else list(settings.regions)
    unknown = [r for r in regions if r not in settings.regions]
    if unknown:
        raise _fail(f"unknown region(s) {', '.join(unknown)}; SOUK_REGIONS is {settings.regions}")
    return regions


@search_app.command("reindex")
def reindex_command(region: RegionOption = None) -> None:
    """Rebuild each region's index from PostgreSQL into a new version and swap it in."""
    from serving.search.reindex import reindex
    from serving.search.wiring import build_search_index
    from souk.stack.endpoints import resolve_url
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    regions = _regions(region)
    try:
        engine = create_db_engine(
            resolve_url(settings, "postgres"), pool_size=2, application_name="souk-search"
        )
    except StackError as exc:
        raise _fail(str(exc)) from None
    index = build_search_index(settings)
    try:
        for name in regions:
            done = reindex(index, engine, name)
            console.print(
                f"{name}: {done.documents} documents into {done.version} "
                f"(was {done.previous or 'none'}), now current"
            )
    finally:
        index.close()
        engine.dispose()


@search_app.command("versions")
def versions_command(region: RegionOption = None) -> None:
    """List each region's kept index versions; the current one is marked."""
    from serving.search.wiring import build_search_index

    index = build_search_index(get_settings())
    table = Table(title="Search index versions")
    for column in ("region", "version", "documents", "current"):
        table.add_column(column)
    try:
        for name in _regions(region):
            for version in index.versions(name):
                table.add_row(
                    name, version.name, str(version.documents), "*" if version.current else ""
                )
    finally:
        index.close()
    console.print(table)


@search_app.command("rollback")
def rollback_command(
    region: RegionOption = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The version to serve (default: the previous one).")
    ] = None,
) -> None:
    """Serve an earlier version again (no restart: servers follow the current version)."""
    from serving.search.reindex import rollback
    from serving.search.wiring import build_search_index

    index = build_search_index(get_settings())
    try:
        for name in _regions(region):
            try:
                before, after = rollback(index, name, to)
            except ValueError as exc:
                raise _fail(str(exc)) from None
            console.print(f"{name}: {before or 'none'} -> {after}")
    finally:
        index.close()
