"""The demo's serving tour: sample searches, suggestions, recommendations and fraud decisions.

Asked of the same services `souk serve` runs (built in this process on the demo's stack) once
the batch jobs have promoted their models: the search index and the suggestion counts were
kept current by the serving process's consumers while the shoppers shopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from souk.settings import Settings

if TYPE_CHECKING:
    from souk.simulation.report import SimulationReport

logger = logging.getLogger(__name__)

#: Sample searches: plain, misspelled, and one that needs a synonym or a correction.
DEMO_QUERIES = ("headphones", "wireles hedphones", "runing shoes", "ketle", "smartwach")
#: Prefixes shown with their suggestions.
DEMO_PREFIXES = ("hea", "runn", "kettel")


@dataclass
class ServingReport:
    """What the serving endpoints answered in the demo."""

    searches: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    online: list[str] = field(default_factory=list)  # the shoppers' searches and clicks
    fraud: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _section(
    report: ServingReport, name: str, lines: list[str], ask: Callable[[], list[str]]
) -> None:
    # One part failing (e.g. no model promoted) is reported, the others still shown.
    try:
        lines.extend(ask())
    except Exception as error:
        logger.exception("demo %s failed", name)
        report.failures.append(f"{name}: {type(error).__name__}: {error}")


def tour(
    settings: Settings,
    database_url: str,
    redis_url: str,
    simulation: SimulationReport | None,
    since: datetime | None = None,
    revisit: SimulationReport | None = None,
) -> ServingReport:
    """Ask every serving domain for the demo's summary lines."""
    from serving.search.corpus import demo_lines as search_lines
    from serving.suggest.demo import demo_lines as suggest_lines
    from souk.services import build_services

    report = ServingReport()
    services = build_services(settings, database_url=database_url, redis_url=redis_url, pool_size=2)
    try:
        _section(
            report,
            "search",
            report.searches,
            lambda: search_lines(services["search"], DEMO_QUERIES, top=3),
        )
        _section(
            report,
            "suggest",
            report.suggestions,
            lambda: suggest_lines(services["suggest"], DEMO_PREFIXES, region=None, per_prefix=4),
        )
        labels = [
            *(simulation.fraud_labels if simulation else []),
            *(revisit.fraud_labels if revisit else []),
        ]
        _extra_sections(services, simulation, report, since, labels)
        # Online click-through: the second visit's lists (the promoted models') if there was one.
        shoppers = revisit or simulation
        if shoppers is not None:

            def online() -> list[str]:
                drained = drain_activity(settings, redis_url)
                return online_lines(services["recommendations"], shoppers, drained)

            _section(report, "online", report.online, online)
    finally:
        services.close()
    return report


def _extra_sections(
    services: Any,
    simulation: SimulationReport | None,
    report: ServingReport,
    since: datetime | None,
    labels: list[Any],
) -> None:
    """Recommendations for the busiest simulated customer; the checkout's fraud decisions."""
    from serving.recommendations.bench import demo_lines as recommendation_lines

    def recommendations() -> list[str]:
        customer = busiest_customer(services.settings)
        if customer is None:
            return ["no customer in gold/user_item_interactions"]
        region = services.settings.region
        if simulation is not None:
            region = simulation.customer_regions.get(customer, region)
        return recommendation_lines(services["recommendations"], customer, region, limit=5)

    _section(report, "recommendations", report.recommendations, recommendations)
    if simulation is not None and since is not None:
        from serving.fraud.demo import demo_lines as fraud_lines

        _section(
            report,
            "fraud",
            report.fraud,
            lambda: fraud_lines(services.engine, labels, since),
        )


#: How long the summary waits for the activity consumer to read the last events.
DRAIN_TIMEOUT_S = 30.0


def drain_activity(
    settings: Settings,
    redis_url: str,
    kafka_bootstrap: str | None = None,
    timeout_s: float = DRAIN_TIMEOUT_S,
) -> bool:
    """Let the recommendations' activity consumer group read the topics to their end (the
    `souk serve` that ran it stopped with the shoppers, before the relay had published their
    last events); whether it caught up within ``timeout_s``. The broker: ``kafka_bootstrap``,
    else the stack's."""
    import redis

    from serving.recommendations.activity import ActivityConsumer
    from souk.stack.endpoints import resolve_url

    bootstrap = kafka_bootstrap or resolve_url(settings, "kafka")
    client = redis.Redis.from_url(redis_url)
    activity = ActivityConsumer(settings, bootstrap, client)
    consumer = activity.consumer
    deadline = time.monotonic() + timeout_s
    try:
        consumer.subscribe(activity.topics)
        while time.monotonic() < deadline:
            activity.poll_once(0.5)
            assigned = consumer.assignment()
            if not assigned:
                continue  # still joining the group
            committed = consumer.committed(assigned, timeout=5)
            # Caught up: every partition's committed offset at its end (or nothing in it).
            ends = [consumer.get_watermark_offsets(p, timeout=5)[1] for p in committed]
            if all(end == 0 or p.offset >= end for p, end in zip(committed, ends, strict=True)):
                return True
        return False
    finally:
        consumer.close()
        client.close()


def online_lines(service: Any, simulation: SimulationReport, drained: bool = True) -> list[str]:
    """The shoppers' searches (zero-result share) and the click-through per model version, as
    ``GET /v1/admin/recommendations/ctr`` reports it (``service``: the
    RecommendationService), beside the lists and clicks the simulator itself counted."""
    lines = [
        f"searches {simulation.searches:,}: {simulation.searches_with_results:,} with results, "
        f"{simulation.searches_zero_results:,} without ({simulation.zero_result_share:.0%} "
        f"zero-result); {simulation.views_from_search_hits:,} product pages opened from hits",
        f"recommendation lists received {simulation.recommendations_served:,} "
        f"(+{simulation.recommendations_empty:,} empty), clicked "
        f"{simulation.recommendations_clicked:,} ({simulation.click_share:.0%})",
    ]
    lines += [
        f"  {version}: {count:,} lists"
        for version, count in sorted(simulation.recommendation_lists.items())
    ]
    rows = service.click_through()
    lines.append(
        "click-through per model version (GET /v1/admin/recommendations/ctr"
        + ("" if drained else "; the activity consumer had not read every event yet")
        + ")"
        + ("" if rows else ": no list served yet")
    )
    lines += [
        f"  {row.model} {row.model_version}: served {row.served:,}, clicked {row.clicked:,}, "
        f"CTR {row.rate:.1%}"
        for row in rows
    ]
    return lines


def busiest_customer(settings: Settings) -> str | None:
    """The customer with the most interactions in the gold table (the richest history)."""
    from collections import Counter

    from jobs.lake.store import table_store

    store = table_store(settings)
    if not store.exists("gold/user_item_interactions"):
        return None
    rows = store.read("gold/user_item_interactions", columns=["customer_id"])
    counts = Counter(rows.column("customer_id").to_pylist())
    return counts.most_common(1)[0][0] if counts else None


def print_serving(console: Console, report: ServingReport) -> None:
    """The serving half of the summary."""
    table = Table(title="Serving: search, suggest, recommendations, fraud scoring", show_lines=True)
    table.add_column("what")
    table.add_column("answer")
    for title, lines in (
        ("search (sample queries, misspelled ones too)", report.searches),
        ("suggest (prefixes)", report.suggestions),
        ("recommendations", report.recommendations),
        ("the shoppers' searches and clicks (second visit, models promoted)", report.online),
        ("fraud decisions at checkout", report.fraud),
    ):
        if lines:
            table.add_row(title, "\n".join(lines))
    for failure in report.failures:
        table.add_row("[red]failed", failure)
    console.print(table)
