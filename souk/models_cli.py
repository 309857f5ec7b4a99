"""``souk models …``: the model registry (list, promote, rollback) and offline evaluation.

Mounted by ``souk.cli`` as ``models``. Training libraries (implicit, scipy, matplotlib) are
imported inside the commands, so ``souk --help`` stays fast.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings

if TYPE_CHECKING:
    from models.registry import ModelRegistry, ModelVersion

models_app = typer.Typer(
    name="models",
    help="Models: registry versions, promotion, rollback, offline evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

#: Metrics shown in the version list when a version has them (first ones first).
_LIST_METRICS = ("precision@10", "ndcg@10", "recall@10", "map@10")


def fail(message: str) -> typer.Exit:
    """Print a one-line error in red; the caller raises the returned Exit."""
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}")
    return typer.Exit(1)


def open_registry() -> ModelRegistry:
    """The registry of this SOUK_HOME (``SOUK_HOME/models``)."""
    from models.registry import ModelRegistry

    return ModelRegistry(settings=get_settings())


@models_app.callback()
def models() -> None:
    """Models: registry versions, promotion, rollback, offline evaluation."""
    # A callback keeps this a command group, whatever the number of commands.


@models_app.command("list")
def list_(
    kind: Annotated[str | None, typer.Argument(help="Only this kind (e.g. als).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered versions (newest last) and which one each kind serves."""
    from models.registry import RegistryError

    registry = open_registry()
    try:
        rows: list[tuple[ModelVersion, bool]] = []
        for name in [kind] if kind else registry.kinds():
            pointer = registry.pointer(name)
            served = pointer.version if pointer else None
            rows += [(version, version.id == served) for version in registry.list(name)]
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if as_json:
        payload = [{**version.to_meta(), "promoted": promoted} for version, promoted in rows]
        print(json.dumps(payload, indent=2, default=str))
        return
    if not rows:
        where = f"for {kind!r} " if kind else ""
        console.print(f"no model versions {where}in {escape(str(registry.root))}")
        return
    table = Table(title=f"Model versions ({escape(str(registry.root))})")
    for column in ("kind", "version", "created (UTC)", "data window", "metrics", "promoted"):
        table.add_column(column)
    for version, promoted in rows:
        table.add_row(
            escape(version.kind),
            escape(version.id),
            f"{version.created_at:%Y-%m-%d %H:%M}",
            _window(version),
            escape(_metrics(version.metrics)),
            "[green]★ serving[/green]" if promoted else "",
        )
    console.print(table)


@models_app.command("promote")
def promote(
    kind: Annotated[str, typer.Argument(help="Model kind, e.g. als.")],
    version: Annotated[str, typer.Argument(help="Version id (see `souk models list`).")],
) -> None:
    """Serve VERSION for KIND (servers pick it up within their check interval)."""
    from models.registry import RegistryError

    try:
        promoted = open_registry().promote(kind, version)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    console.print(f"promoted {escape(kind)} {escape(promoted.id)}")


@models_app.command("rollback")
def rollback(kind: Annotated[str, typer.Argument(help="Model kind, e.g. als.")]) -> None:
    """Serve the previously promoted version of KIND again."""
    from models.registry import RegistryError

    try:
        restored = open_registry().rollback(kind)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    console.print(f"rolled back {escape(kind)} to {escape(restored.id)}")


@models_app.command("evaluate")
def evaluate(
    movielens: Annotated[
        bool,
        typer.Option(
            "--movielens", help="Public sanity check on MovieLens-100k (75/25 per-user split)."
        ),
    ] = False,
    k: Annotated[int, typer.Option(min=1, help="Cut-off of the top-k metrics.")] = 10,
    test_fraction: Annotated[
        float,
        typer.Option(min=0.01, max=0.99, help="Gold: the latest share of interactions to test on."),
    ] = 0.2,
    cut: Annotated[
        datetime | None,
        typer.Option(help="Gold: train before this UTC time, test after (overrides the fraction)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: SOUK_HOME/reports/…).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary.")] = False,
) -> None:
    """Evaluate ALS, item-kNN and popularity offline; print the metrics and the report path."""
    settings = get_settings()
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if movielens:
        from models.evaluation.movielens import DatasetUnavailable, run_movielens

        path = report or settings.state_dir / "reports" / f"models-movielens-{stamp}.html"
        try:
            with console.status("training and evaluating on MovieLens-100k…"):
                summary = run_movielens(k=k, report_path=path)
        except DatasetUnavailable as exc:
            raise fail(str(exc)) from None
    else:
        path = report or settings.state_dir / "reports" / f"models-gold-{stamp}.html"
        summary = _evaluate_gold(k, test_fraction, cut, path)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    _print_summary(summary)
    console.print(f"report: {escape(str(summary['report']))}")


def _evaluate_gold(
    k: int, test_fraction: float, cut: datetime | None, path: Path
) -> dict[str, Any]:
    """Time-split evaluation on the lake's gold interactions; the summary with its report."""
    from jobs.lake import LakeError
    from models.evaluation.report import default_trainers, train_and_evaluate, write_html_report
    from models.evaluation.split import cut_at_fraction, time_split
    from models.recommenders.artifact import INTERACTIONS_TABLE, load_interactions

    settings = get_settings()
    try:
        interactions = load_interactions(settings)
    except (LakeError, OSError) as exc:  # LakeError: the gold job has not run yet
        raise fail(f"cannot read {INTERACTIONS_TABLE}: {exc}") from None
    if interactions.empty:
        raise fail(f"{INTERACTIONS_TABLE} is empty: nothing to evaluate")
    at = cut if cut is not None else cut_at_fraction(interactions, test_fraction)
    split = time_split(interactions, at)
    if split.train.empty or split.test.empty:
        raise fail(f"the cut at {at} leaves an empty train or test set: pick another --cut")
    with console.status("training and evaluating on the gold interactions…"):
        summary = train_and_evaluate(
            default_trainers(), split, k=k, dataset=f"gold (cut {at:%Y-%m-%d %H:%M} UTC)"
        )
    summary["cut"] = str(at)
    summary["report"] = str(write_html_report(summary, path))
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    """The metrics table of an evaluation summary (published figures dimmed)."""
    k = summary["k"]
    columns = [f"{name}@{k}" for name in ("precision", "recall", "ndcg", "map", "coverage")]
    sizes = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in summary["split"].items())
    table = Table(title=escape(f"{summary['dataset']}: {sizes}"))
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("train s", justify="right")
    for name, values in summary["models"].items():
        cells = [f"{values[column]:.4f}" if column in values else "-" for column in columns]
        table.add_row(escape(name), *cells, f"{values.get('train_s', 0):.2f}")
    for name, values in (summary.get("reference") or {}).items():
        cells = [f"{values[column]:.3f}" if column in values else "-" for column in columns]
        table.add_row(f"[dim]{escape(name)} (published)[/dim]", *cells, "")
    console.print(table)


def _window(version: ModelVersion) -> str:
    """The data window as ``2026-11-01 → 2026-12-01`` (``-`` when unknown)."""
    if version.data_start is None and version.data_end is None:
        return "-"
    start = f"{version.data_start:%Y-%m-%d}" if version.data_start else "…"
    end = f"{version.data_end:%Y-%m-%d}" if version.data_end else "…"
    return f"{start} → {end}"


def _metrics(metrics: dict[str, Any]) -> str:
    """A short metrics line: the usual top-10 figures first, at most three."""
    keys = [key for key in _LIST_METRICS if key in metrics]
    keys += [key for key in metrics if key not in keys]
    parts = []
    for key in keys[:3]:
        value = metrics[key]
        parts.append(f"{key} {value:.3f}" if isinstance(value, int | float) else f"{key} {value}")
    return ", ".join(parts) or "-"
