"""``souk vault …``: operate the card vault's keys (mounted by ``souk.cli``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from transactional.shared.errors import SoukError

vault_app = typer.Typer(
    name="vault",
    help="Card vault: KEK rotation and status.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


@vault_app.callback()
def vault() -> None:
    """Card vault: KEK rotation and status."""


@vault_app.command("rotate-key")
def rotate_key(
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key/--no-new-key",
            help="Create a new KEK version first (--no-new-key: only re-wrap to the current one).",
        ),
    ] = True,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Data keys per committed batch (SOUK_VAULT_ROTATION_BATCH)."),
    ] = None,
) -> None:
    """Make a new KEK version current and re-wrap every data key to it, while serving goes on."""
    from souk.vault_wiring import build_key_management
    from transactional.payments.vault.repository import SqlWrappedKeys
    from transactional.payments.vault.rotation import rotate
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    try:
        engine = create_db_engine(
            resolve_url(settings, "postgres"), pool_size=1, application_name="souk-vault"
        )
    except (StackError, SoukError) as exc:
        raise _fail(str(exc)) from None
    columns = (
        TextColumn("re-wrapping to {task.fields[kek]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("rotate", total=None, kek="…")

            def started(kek_id: str, total: int) -> None:
                progress.update(task, total=total, kek=kek_id)

            report = rotate(
                build_key_management(settings),
                SqlWrappedKeys(engine),
                new_version=new_key,
                batch_size=batch_size or settings.vault_rotation_batch,
                on_start=started,
                on_batch=lambda done: progress.advance(task, done),
            )
    except SoukError as exc:
        raise _fail(str(exc)) from None
    except OperationalError as exc:  # the database went away: one line, not a traceback
        raise _fail(f"PostgreSQL: {' '.join(str(exc.orig).split())}") from None
    finally:
        engine.dispose()
    console.print(
        f"KEK {report.kek_id} is current; {report.rewrapped} data keys re-wrapped "
        f"in {report.passes} pass(es)"
    )


@vault_app.command("status")
def status() -> None:
    """The current KEK version and how many data keys each version wraps."""
    from souk.vault_wiring import build_key_management
    from transactional.payments.vault.repository import SqlWrappedKeys
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    try:
        engine = create_db_engine(
            resolve_url(settings, "postgres"), pool_size=1, application_name="souk-vault"
        )
        try:
            current = build_key_management(settings).current_key_id()
            versions = SqlWrappedKeys(engine).versions()
        finally:
            engine.dispose()
    except (StackError, SoukError) as exc:
        raise _fail(str(exc)) from None
    except OperationalError as exc:
        raise _fail(f"PostgreSQL: {' '.join(str(exc.orig).split())}") from None
    table = Table(title=f"Card vault ({settings.vault_kek_source})")
    table.add_column("KEK version")
    table.add_column("data keys", justify="right")
    table.add_column("")
    for kek_id in sorted(set(versions) | {current}):
        table.add_row(kek_id, str(versions.get(kek_id, 0)), "current" if kek_id == current else "")
    console.print(table)
