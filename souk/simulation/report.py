"""The outcome of a simulation run: counters, fraud labels, placed orders, latency, tables."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table

from souk.simulation.model import STORED_METHOD, LinePlan


@dataclass
class FraudLabel:
    """Ground truth for fraud detection: a fraud-like session, its account and its orders."""

    session: int
    customer_id: str
    kinds: tuple[str, ...]
    order_ids: list[str] = field(default_factory=list)


@dataclass
class OrderRecord:
    """An order the simulation placed, for invariant checks afterwards."""

    order_id: str
    customer_id: str
    currency: str
    session: int
    fraud: bool
    lines: tuple[LinePlan, ...]
    cancelled: bool = False
    method: str = "card"  # how the session paid (a plan's Method)
    status: str = "paid"  # paid, pending (waiting on the payer), or how it ended otherwise
    returned: bool = False  # a return of some of its lines was refunded
    refunded_minor: int = 0  # refunded by returns


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class SimulationReport:
    """What a simulation run did and saw."""

    seed: int = 0
    # Shopper index → the customer id its account got (registered accounts only).
    customer_ids: dict[int, str] = field(default_factory=dict)
    customer_regions: dict[str, str] = field(default_factory=dict)  # customer id → home region
    sessions_planned: int = 0
    sessions: int = 0  # played to their end
    sessions_aborted: int = 0  # stopped by an unexpected answer or a transport error
    sessions_dropped: int = 0  # not started in time (the server could not keep up)
    registrations: int = 0
    logins: int = 0
    cart_merges: int = 0  # guest carts merged at sign-in
    searches: int = 0  # GET /v1/search answered (each sent on as search.performed)
    searches_with_results: int = 0
    searches_zero_results: int = 0  # nothing found: the shopper browsed the category instead
    views: int = 0
    views_from_search_hits: int = 0  # product pages opened from a real search hit
    recommendations_served: int = 0  # non-empty lists received from the server
    recommendations_empty: int = 0  # lists the server answered empty (no widget shown)
    recommendations_clicked: int = 0
    # "<model> <model_version>" → non-empty lists received, as the server named them.
    recommendation_lists: Counter[str] = field(default_factory=Counter)
    serving_rate_limited: int = 0  # 429 from search or recommendations (shown nothing)
    events_sent: int = 0
    carts: int = 0
    items_added: int = 0
    items_refused: int = 0  # add-to-cart refused for lack of stock
    carts_abandoned: int = 0
    checkouts_attempted: int = 0
    checkouts_succeeded: int = 0
    checkouts_declined: int = 0
    checkouts_out_of_stock: int = 0
    cancels: int = 0
    idempotent_replays: int = 0
    replay_mismatches: int = 0  # a replay answered differently from the first call
    second_tabs_refused: int = 0  # a bought cart checked out again (new key): 422, not sold
    # (method, outcome) -> checkouts: paid, declined, abandoned (a step-up left to expire),
    # expired (a UPI collect nobody answered), pending (still waiting when the run ended).
    payments: Counter[tuple[str, str]] = field(default_factory=Counter)
    checkouts_blocked: int = 0  # refused: the shopper's earlier checkout waits on the payer
    topups: int = 0  # wallet top-ups that went through
    topups_separate: int = 0  # of them, a step of its own before shopping
    topups_declined: int = 0
    topped_up_minor: Counter[str] = field(default_factory=Counter)  # currency -> minor units
    step_ups_confirmed: int = 0  # 3-D Secure challenges the shopper confirmed
    step_ups_abandoned: int = 0  # ... and left to expire
    upi_approved: int = 0
    upi_declined: int = 0
    upi_expired: int = 0
    upi_pending: int = 0  # no answer applied when the run ended
    webhooks_delivered: int = 0  # signed UPI deliveries the server took (2xx or 409 seen)
    deliveries: int = 0  # paid orders moved to delivered by the simulator's admin
    returns_requested: int = 0
    returns_refused: int = 0  # outside the category's window (e.g. groceries)
    returns_refunded: int = 0
    returned_lines_damaged: int = 0
    refunded_minor: Counter[str] = field(default_factory=Counter)  # currency -> by returns
    fraud_sessions: int = 0
    fraud_labels: list[FraudLabel] = field(default_factory=list)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    http_errors: Counter[int] = field(default_factory=Counter)  # 4xx/5xx by status
    transport_errors: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)  # "POST /v1/x → 422"
    samples: list[str] = field(default_factory=list)  # the first unexpected answers
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def five_xx(self) -> int:
        """Server errors seen."""
        return sum(count for status, count in self.http_errors.items() if status >= 500)

    @property
    def ok(self) -> bool:
        """No 5xx, no transport error, no unexpected answer, every replay answered the same."""
        return (
            self.five_xx == 0
            and self.transport_errors == 0
            and not self.unexpected
            and self.replay_mismatches == 0
        )

    @property
    def zero_result_share(self) -> float:
        """Searches that found nothing, of all searches (0 without searches)."""
        return self.searches_zero_results / self.searches if self.searches else 0.0

    @property
    def click_share(self) -> float:
        """Clicked lists of the non-empty lists received (the simulator's own count)."""
        served = self.recommendations_served
        return self.recommendations_clicked / served if served else 0.0

    def latency(self, endpoint: str) -> tuple[float, float]:
        """(p50, p99) in ms of ``endpoint`` (e.g. ``POST /v1/checkout``)."""
        samples = self.latencies_ms.get(endpoint, [])
        return (statistics.median(samples) if samples else 0.0, percentile(samples, 0.99))

    def paid_by_method(self) -> Counter[str]:
        """Paid checkouts per payment method as the server records it (payments.method)."""
        paid: Counter[str] = Counter()
        for (method, outcome), count in self.payments.items():
            if outcome == "paid":
                paid[STORED_METHOD.get(method, method)] += count
        return paid

    def fraud_customers(self) -> set[str]:
        """Accounts labelled fraud-like."""
        return {label.customer_id for label in self.fraud_labels}

    def fraud_orders(self) -> set[str]:
        """Orders placed by fraud-like sessions."""
        return {order_id for label in self.fraud_labels for order_id in label.order_ids}


def report_tables(report: SimulationReport) -> list[Table]:
    """The report as rich tables: what the shoppers did, HTTP outcomes, latency per endpoint."""
    did = Table(title=f"Simulated shoppers (seed {report.seed}, {report.elapsed_s:.0f} s)")
    did.add_column("what")
    did.add_column("count", justify="right")
    rows = [
        ("sessions played / planned", f"{report.sessions} / {report.sessions_planned}"),
        ("sessions aborted / dropped", f"{report.sessions_aborted} / {report.sessions_dropped}"),
        ("registrations / sign-ins", f"{report.registrations} / {report.logins}"),
        ("guest carts merged at sign-in", str(report.cart_merges)),
        ("searches / product views", f"{report.searches} / {report.views}"),
        (
            "  searches with results / zero results",
            f"{report.searches_with_results} / {report.searches_zero_results} "
            f"({report.zero_result_share:.0%} zero)",
        ),
        ("  product views from search hits", str(report.views_from_search_hits)),
        (
            "recommendation lists received / empty / clicked",
            f"{report.recommendations_served} / {report.recommendations_empty} / "
            f"{report.recommendations_clicked}",
        ),
        *(
            (f"  lists of {version}", str(count))
            for version, count in sorted(report.recommendation_lists.items())
        ),
        ("search / recommendation calls rate-limited (429)", str(report.serving_rate_limited)),
        ("behaviour events sent", str(report.events_sent)),
        (
            "carts / items added / refused",
            f"{report.carts} / {report.items_added} / {report.items_refused}",
        ),
        ("carts abandoned", str(report.carts_abandoned)),
        ("checkouts attempted", str(report.checkouts_attempted)),
        ("  succeeded (orders)", str(report.checkouts_succeeded)),
        ("  declined (402)", str(report.checkouts_declined)),
        ("  out of stock (409)", str(report.checkouts_out_of_stock)),
        ("orders cancelled", str(report.cancels)),
        ("idempotent replays (same answer)", str(report.idempotent_replays)),
        ("replays answered differently", str(report.replay_mismatches)),
        (
            "bought carts checked out again from a 2nd tab (refused)",
            str(report.second_tabs_refused),
        ),
        (
            "fraud-like sessions / accounts / orders",
            f"{report.fraud_sessions} / {len(report.fraud_customers())} / "
            f"{len(report.fraud_orders())}",
        ),
        (
            "HTTP errors by status",
            ", ".join(f"{s}: {n}" for s, n in sorted(report.http_errors.items())) or "none",
        ),
        ("5xx responses", str(report.five_xx)),
        ("transport errors", str(report.transport_errors)),
        ("unexpected answers", str(sum(report.unexpected.values()))),
    ]
    for what, value in rows:
        did.add_row(what, value)
    tables = [did]
    if report.payments or report.topups or report.returns_requested:
        tables.append(money_table(report))
    latency = Table(title="Latency per endpoint")
    latency.add_column("endpoint")
    latency.add_column("calls", justify="right")
    latency.add_column("p50 ms", justify="right")
    latency.add_column("p99 ms", justify="right")
    for endpoint in sorted(report.latencies_ms):
        p50, p99 = report.latency(endpoint)
        latency.add_row(
            endpoint, str(len(report.latencies_ms[endpoint])), f"{p50:,.1f}", f"{p99:,.1f}"
        )
    tables.append(latency)
    if report.unexpected:
        odd = Table(title="Unexpected answers (first samples below)")
        odd.add_column("call → status")
        odd.add_column("count", justify="right")
        for what, count in report.unexpected.most_common():
            odd.add_row(what, str(count))
        tables.append(odd)
    return tables


def _money(minor: Counter[str]) -> str:
    return ", ".join(f"{value / 100:,.2f} {currency}" for currency, value in sorted(minor.items()))


def money_table(report: SimulationReport) -> Table:
    """Payments by method and outcome, top-ups, step-ups, UPI answers and returns."""
    table = Table(title="Simulated payments and returns")
    table.add_column("what")
    table.add_column("count", justify="right")
    methods = sorted({method for method, _ in report.payments})
    for method in methods:
        outcomes = {o: n for (m, o), n in report.payments.items() if m == method}
        table.add_row(
            f"paid by {method}",
            ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items())),
        )
    rows = [
        (
            "wallet top-ups (separate step) / declined",
            f"{report.topups} ({report.topups_separate}) / {report.topups_declined}",
        ),
        ("  topped up", _money(report.topped_up_minor) or "-"),
        (
            "3-D Secure step-ups confirmed / abandoned",
            f"{report.step_ups_confirmed} / {report.step_ups_abandoned}",
        ),
        (
            "UPI approved / declined / expired / pending",
            f"{report.upi_approved} / {report.upi_declined} / {report.upi_expired} / "
            f"{report.upi_pending}",
        ),
        ("UPI webhooks delivered", str(report.webhooks_delivered)),
        ("orders delivered", str(report.deliveries)),
        (
            "returns requested / refused / refunded",
            f"{report.returns_requested} / {report.returns_refused} / {report.returns_refunded}",
        ),
        ("  returned lines damaged", str(report.returned_lines_damaged)),
        ("  refunded", _money(report.refunded_minor) or "-"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table
