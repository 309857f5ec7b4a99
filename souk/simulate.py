"""A seeded, reproducible shopper simulation over the public HTTP API (``souk simulate``).

Two halves. ``ShopperModel`` is the pure decision model: the shoppers' profiles and each
session's plan depend only on the seed and the session's number, so the same seed makes the same
decisions whatever the thread timing or the server's answers. ``Simulation`` plays those plans
against a server with a pool of worker threads, sessions arriving open-loop at a fixed rate, and
counts what happened (latency per endpoint included) in a ``SimulationReport``.

A small share of sessions behaves like fraud (bursts of orders from one account, shipping far
from the account's region, many high-value items); those sessions, accounts and orders are
labelled in the report so fraud detection can be scored for recall against them.
"""

from __future__ import annotations

import math
import os
import queue
import random
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, text

from souk.seed import SeededCatalog, bearer, chunked
from souk.settings import Settings
from souk.synthetic import SEARCH_TERMS
from transactional.shared.errors import SoukError
from transactional.shared.regions import REGION_CURRENCY, region_distance

# Sandbox cards: the gateway's documented test numbers.
CARDS: dict[str, str] = {
    "ok": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
}
Card = Literal["ok", "declined", "insufficient_funds"]
REPLAYED_HEADER = "Idempotent-Replayed"  # set by POST /v1/checkout on a replayed answer
Outcome = Literal["bounce", "abandon", "checkout"]
Edit = Literal["none", "bump", "remove"]
FRAUD_KINDS = ("burst", "far_shipping", "high_value")

SHOPPER_COUNTRIES: dict[str, tuple[str, ...]] = {
    "eu": ("DE", "FR", "ES", "IT", "NL"),
    "us": ("US",),
    "in": ("IN",),
}
# A plausible street address per country (the simulation needs valid ones, not real ones).
ADDRESS_BOOK: dict[str, dict[str, str]] = {
    "DE": {"line1": "Invalidenstr. 116", "city": "Berlin", "postal_code": "10115"},
    "FR": {"line1": "12 Rue de Rivoli", "city": "Paris", "postal_code": "75001"},
    "ES": {"line1": "Calle Mayor 5", "city": "Madrid", "postal_code": "28013"},
    "IT": {"line1": "Via del Corso 10", "city": "Roma", "postal_code": "00186"},
    "NL": {"line1": "Damrak 1", "city": "Amsterdam", "postal_code": "1012LG"},
    "US": {"line1": "500 Congress Ave", "city": "Austin", "postal_code": "78701"},
    "IN": {"line1": "12 MG Road", "city": "Bengaluru", "postal_code": "560001"},
}
FIRST_NAMES = ("Ada", "Ravi", "Mia", "Jon", "Lea", "Sam", "Ana", "Kai", "Noor", "Tom", "Ivy")
LAST_NAMES = ("Lovelace", "Iyer", "Rossi", "Smith", "Weber", "Garcia", "Chen", "Khan", "Dubois")
PASSWORD = "simulated-shopper-pw"  # synthetic accounts on a local stack


@dataclass(frozen=True)
class SimulationConfig:
    """Load shape and behaviour mix of a simulation run (shares are probabilities)."""

    users: int = 20  # distinct shopper accounts
    rate: float = 2.0  # sessions started per second
    duration: float = 30.0  # seconds during which sessions start
    seed: int = 7
    regions: tuple[str, ...] = ("eu", "us", "in")
    region_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    fraud_share: float = 0.04  # of sessions
    guest_share: float = 0.3  # start as a guest, sign in (merging the cart) at checkout
    search_share: float = 0.5
    recommendation_share: float = 0.3
    click_share: float = 0.4  # of served recommendations
    cart_share: float = 0.6  # sessions that put something in the cart
    checkout_share: float = 0.65  # of sessions with a cart; the rest abandon
    declined_share: float = 0.06
    insufficient_funds_share: float = 0.03
    retry_decline_share: float = 0.5  # retry a declined checkout with a good card
    replay_share: float = 0.1  # send the same checkout again with the same Idempotency-Key
    cancel_share: float = 0.06
    edit_share: float = 0.15  # change a quantity or remove a line before deciding
    workers: int = 16  # concurrent sessions at most
    grace_s: float = 60.0  # sessions not started this long after the window are dropped
    event_batch: int = 20  # behaviour events per POST /v1/events
    timeout_s: float = 30.0  # per HTTP request

    def __post_init__(self) -> None:
        if self.users < 1 or self.workers < 1 or self.event_batch < 1:
            raise ValueError("users, workers and event_batch must be at least 1")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("rate and duration must be positive")
        if len(self.regions) != len(self.region_weights) or not self.regions:
            raise ValueError("give one weight per region")
        unknown = set(self.regions) - set(SHOPPER_COUNTRIES)
        if unknown:
            raise ValueError(f"the simulation knows no addresses in {sorted(unknown)}")
        shares = [value for name, value in vars(self).items() if name.endswith("_share")]
        if any(not 0 <= share <= 1 for share in shares):
            raise ValueError("every *_share is a probability between 0 and 1")


@dataclass(frozen=True)
class ShopperProfile:
    """Who a simulated account is: home region, currency, country, and whether it is a fraudster."""

    index: int
    name: str
    region: str
    currency: str
    country: str
    fraudster: bool = False


@dataclass(frozen=True)
class ViewPlan:
    """One product page view and where the shopper came from."""

    product_id: str
    sku: str
    source: str  # a behaviour ViewSource
    position: int | None = None


@dataclass(frozen=True)
class LinePlan:
    """A SKU and quantity put in the cart."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class SessionPlan:
    """Every decision of one shopper visit, made before any request is sent."""

    index: int
    shopper: int
    fraud_kinds: tuple[str, ...]
    guest_start: bool
    search_query: str | None
    search_category: str | None
    views: tuple[ViewPlan, ...]
    recommended: tuple[str, ...]  # product ids of a served recommendation widget
    clicked: int | None  # position clicked in ``recommended``
    lines: tuple[LinePlan, ...]
    edit: Edit
    outcome: Outcome
    orders: int  # checkouts in this session (a burst when > 1)
    card: Card
    retry_declined: bool
    replay: bool
    cancel: bool
    ship_region: str | None  # None: the account's saved home address

    @property
    def fraud(self) -> bool:
        """Whether this session is labelled fraud-like."""
        return bool(self.fraud_kinds)


def far_regions(home: str, regions: Sequence[str]) -> list[str]:
    """The simulated regions farthest from ``home`` (where a fraudster ships an order)."""
    others = [r for r in regions if r != home] or [r for r in SHOPPER_COUNTRIES if r != home]
    farthest = max(region_distance(home, r) for r in others)
    return [r for r in others if region_distance(home, r) == farthest]


class ShopperModel:
    """The pure decision model: profiles and per-session plans from the seed (no I/O)."""

    def __init__(self, catalog: SeededCatalog, config: SimulationConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.profiles = self._profiles()
        self._honest = [p.index for p in self.profiles if not p.fraudster]
        self._fraudsters = [p.index for p in self.profiles if p.fraudster]
        self._high_value = {
            currency: catalog.high_value(currency) for currency in REGION_CURRENCY.values()
        }

    def _rng(self, *parts: object) -> random.Random:
        # String seeds hash with SHA-512: stable across processes (unlike hash()).
        return random.Random("/".join(str(part) for part in (self.config.seed, *parts)))

    def _profiles(self) -> list[ShopperProfile]:
        config = self.config
        rng = self._rng("profiles")
        # At least one fraudster when fraud is wanted, but never only fraudsters.
        fraudsters = (
            min(config.users - 1, max(1, math.ceil(config.users * config.fraud_share)))
            if config.fraud_share > 0
            else 0
        )
        fraud_indices = set(rng.sample(range(config.users), fraudsters))
        profiles = []
        for index in range(config.users):
            region = rng.choices(config.regions, weights=config.region_weights)[0]
            profiles.append(
                ShopperProfile(
                    index=index,
                    name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    region=region,
                    currency=REGION_CURRENCY[region],
                    country=rng.choice(SHOPPER_COUNTRIES[region]),
                    fraudster=index in fraud_indices,
                )
            )
        return profiles

    def arrivals(self) -> list[float]:
        """Session start offsets (s): a Poisson process at ``rate`` over ``duration``."""
        rng = self._rng("arrivals")
        offsets: list[float] = []
        at = 0.0
        while True:
            at += rng.expovariate(self.config.rate)
            if at >= self.config.duration:
                return offsets or [0.0]
            offsets.append(at)

    def sessions(self, count: int) -> Iterator[SessionPlan]:
        """The plans of sessions 0..count-1."""
        for index in range(count):
            yield self.session(index)

    def session(self, index: int) -> SessionPlan:
        """The plan of session ``index``: a function of the seed and ``index`` only."""
        rng = self._rng("session", index)
        fraud = bool(self._fraudsters) and rng.random() < self.config.fraud_share
        if fraud:
            return self._fraud_session(index, rng, rng.choice(self._fraudsters))
        shopper = rng.choice(self._honest or self._fraudsters)
        return self._honest_session(index, rng, shopper)

    def _honest_session(self, index: int, rng: random.Random, shopper: int) -> SessionPlan:
        config = self.config
        guest = rng.random() < config.guest_share
        query = category = None
        views: list[ViewPlan] = []
        if rng.random() < config.search_share:
            query = rng.choice(SEARCH_TERMS)
            category = self.catalog.pick(rng).category_id
            in_category = [p for p in self.catalog.products if p.category_id == category]
            for position in range(min(len(in_category), rng.randint(0, 2))):
                product = in_category[position]
                views.append(
                    ViewPlan(product.product_id, rng.choice(product.skus).sku, "search", position)
                )
        for _ in range(rng.randint(1, 5)):
            product = self.catalog.pick(rng)
            source = rng.choice(("category", "direct", "deal", "external"))
            views.append(ViewPlan(product.product_id, rng.choice(product.skus).sku, source))
        recommended: tuple[str, ...] = ()
        clicked = None
        if rng.random() < config.recommendation_share:
            picks = {self.catalog.pick(rng).product_id for _ in range(6)}
            recommended = tuple(sorted(picks))[:4]
            if rng.random() < config.click_share:
                clicked = rng.randrange(len(recommended))
                product = self.catalog.product(recommended[clicked])
                views.append(
                    ViewPlan(
                        product.product_id, rng.choice(product.skus).sku, "recommendation", clicked
                    )
                )
        lines: list[LinePlan] = []
        outcome: Outcome = "bounce"
        if rng.random() < config.cart_share:
            skus = list(dict.fromkeys(view.sku for view in views))
            for sku in rng.sample(skus, min(len(skus), rng.randint(1, 3))):
                lines.append(LinePlan(sku, 1 if rng.random() < 0.8 else 2))
            outcome = "checkout" if rng.random() < config.checkout_share else "abandon"
        edit: Edit = "none"
        if lines and rng.random() < config.edit_share:
            edit = "remove" if len(lines) > 1 and rng.random() < 0.5 else "bump"
        draw = rng.random()
        card: Card = (
            "declined"
            if draw < config.declined_share
            else "insufficient_funds"
            if draw < config.declined_share + config.insufficient_funds_share
            else "ok"
        )
        return SessionPlan(
            index=index,
            shopper=shopper,
            fraud_kinds=(),
            guest_start=guest,
            search_query=query,
            search_category=category,
            views=tuple(views),
            recommended=recommended,
            clicked=clicked,
            lines=tuple(lines),
            edit=edit,
            outcome=outcome,
            orders=1,
            card=card,
            retry_declined=rng.random() < config.retry_decline_share,
            replay=rng.random() < config.replay_share,
            cancel=rng.random() < config.cancel_share,
            ship_region=None,
        )

    def _fraud_session(self, index: int, rng: random.Random, shopper: int) -> SessionPlan:
        profile = self.profiles[shopper]
        kinds = tuple(kind for kind in FRAUD_KINDS if rng.random() < 0.6) or (
            rng.choice(FRAUD_KINDS),
        )
        if "high_value" in kinds:
            pool = self._high_value[profile.currency]
            products = rng.sample(pool, min(len(pool), rng.randint(2, 3)))
            lines = [LinePlan(rng.choice(p.skus).sku, rng.randint(2, 4)) for p in products]
        else:
            products = [self.catalog.pick(rng) for _ in range(rng.randint(1, 2))]
            lines = [LinePlan(rng.choice(p.skus).sku, rng.randint(1, 2)) for p in products]
        lines = list({line.sku: line for line in lines}.values())  # one line per SKU
        views = tuple(
            ViewPlan(self.catalog.sku(line.sku).product_id, line.sku, "direct") for line in lines
        )
        ship_region = (
            rng.choice(far_regions(profile.region, self.config.regions))
            if "far_shipping" in kinds
            else None
        )
        return SessionPlan(
            index=index,
            shopper=shopper,
            fraud_kinds=kinds,
            guest_start=False,
            search_query=None,
            search_category=None,
            views=views,
            recommended=(),
            clicked=None,
            lines=tuple(lines),
            edit="none",
            outcome="checkout",
            orders=rng.randint(3, 5) if "burst" in kinds else 1,
            card="declined" if rng.random() < 0.15 else "ok",
            retry_declined=True,
            replay=False,
            cancel=False,
            ship_region=ship_region,
        )


# -- the report ---------------------------------------------------------------------------------


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
    sessions_planned: int = 0
    sessions: int = 0  # played to their end
    sessions_aborted: int = 0  # stopped by an unexpected answer or a transport error
    sessions_dropped: int = 0  # not started in time (the server could not keep up)
    registrations: int = 0
    logins: int = 0
    cart_merges: int = 0  # guest carts merged at sign-in
    searches: int = 0
    views: int = 0
    recommendations_served: int = 0
    recommendations_clicked: int = 0
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

    def latency(self, endpoint: str) -> tuple[float, float]:
        """(p50, p99) in ms of ``endpoint`` (e.g. ``POST /v1/checkout``)."""
        samples = self.latencies_ms.get(endpoint, [])
        return (statistics.median(samples) if samples else 0.0, percentile(samples, 0.99))

    def fraud_customers(self) -> set[str]:
        """Accounts labelled fraud-like."""
        return {label.customer_id for label in self.fraud_labels}

    def fraud_orders(self) -> set[str]:
        """Orders placed by fraud-like sessions."""
        return {order_id for label in self.fraud_labels for order_id in label.order_ids}


# -- the runner ---------------------------------------------------------------------------------


class ServerFailed(SoukError):
    """The `souk serve` child process of a run did not start."""


class SessionAborted(Exception):
    """An answer the session cannot continue from (recorded in the report already)."""


@dataclass
class _Account:
    """The live state of one simulated account (guarded by ``lock``: one session at a time)."""

    profile: ShopperProfile
    email: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    registered: bool = False
    customer_id: str | None = None
    token: str | None = None
    token_at: float = 0.0
    address_id: str | None = None
    cart_id: str | None = None


TOKEN_REUSE_S = 600.0  # a returning visitor within this window is still signed in


class Simulation:
    """Plays a ShopperModel's sessions against a Souk server and reports what happened."""

    def __init__(
        self,
        base_url: str,
        catalog: SeededCatalog,
        config: SimulationConfig,
        *,
        console: Console | None = None,
        show_progress: bool = True,
        tag: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.catalog = catalog
        self.config = config
        self.model = ShopperModel(catalog, config)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        # The tag keeps emails and ids unique on a server that saw earlier runs; decisions
        # never depend on it.
        self.tag = tag or secrets.token_hex(3)
        self._transport = transport
        self._lock = threading.Lock()
        self.report = SimulationReport(seed=config.seed)
        self.accounts = [
            _Account(profile, f"shopper-{self.tag}-{profile.index}@sim.souk.dev")
            for profile in self.model.profiles
        ]

    # -- bookkeeping (thread-safe) --

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.report, name, getattr(self.report, name) + value)

    def _call(
        self,
        http: httpx.Client,
        method: str,
        route: str,
        expected: Collection[int],
        path: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request, record status and latency; SessionAborted unless ``expected``."""
        endpoint = f"{method} {route}"
        started = time.perf_counter()
        try:
            response = http.request(method, path or route, **kwargs)
        except httpx.HTTPError as error:
            with self._lock:
                self.report.transport_errors += 1
                self._sample(f"{endpoint}: {type(error).__name__}: {error}")
            raise SessionAborted(endpoint) from error
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        with self._lock:
            self.report.latencies_ms.setdefault(endpoint, []).append(elapsed_ms)
            if status >= 400:
                self.report.http_errors[status] += 1
            if status not in expected:
                self.report.unexpected[f"{endpoint} → {status}"] += 1
                self._sample(f"{endpoint} → {status}: {response.text[:300]}")
        if status not in expected:
            raise SessionAborted(endpoint)
        return response

    def _sample(self, line: str) -> None:
        if len(self.report.samples) < 20:
            self.report.samples.append(line)

    # -- scheduling --

    def run(self) -> SimulationReport:
        """Start sessions at the configured rate for the configured duration; wait for them."""
        arrivals = self.model.arrivals()
        self.report.sessions_planned = len(arrivals)
        tickets: queue.Queue[int | None] = queue.Queue()
        workers = max(1, min(self.config.workers, self.config.users, len(arrivals)))
        started = time.monotonic()
        cutoff = started + self.config.duration + self.config.grace_s
        with self._progress() as progress:
            task = progress.add_task("shopper sessions", total=len(arrivals))

            def work() -> None:
                with httpx.Client(
                    base_url=self.base_url,
                    timeout=self.config.timeout_s,
                    transport=self._transport,
                ) as http:
                    while (index := tickets.get()) is not None:
                        if time.monotonic() > cutoff:
                            self._count(sessions_dropped=1)
                        else:
                            self._play(http, self.model.session(index))
                        progress.advance(task)

            threads = [
                threading.Thread(target=work, name=f"shopper-{n}", daemon=True)
                for n in range(workers)
            ]
            for thread in threads:
                thread.start()
            for index, offset in enumerate(arrivals):
                pause = started + offset - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                tickets.put(index)
                progress.update(task, description=self._status_line())
            for _ in threads:
                tickets.put(None)
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
                    progress.update(task, description=self._status_line())
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    def _status_line(self) -> str:
        report = self.report
        return (
            f"shopper sessions (orders {report.checkouts_succeeded}, "
            f"stock-outs {report.checkouts_out_of_stock}, 5xx {report.five_xx})"
        )

    @contextmanager
    def _progress(self) -> Iterator[Progress]:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.show_progress,
        )
        with progress:
            yield progress

    # -- one session --

    def _play(self, http: httpx.Client, plan: SessionPlan) -> None:
        account = self.accounts[plan.shopper]
        label = FraudLabel(plan.index, "", plan.fraud_kinds) if plan.fraud else None
        with account.lock:
            try:
                self._session(http, plan, account, label)
            except SessionAborted:
                self._count(sessions_aborted=1)
            else:
                self._count(sessions=1)
            finally:
                if label is not None:
                    label.customer_id = account.customer_id or ""
                    with self._lock:
                        self.report.fraud_sessions += 1
                        self.report.fraud_labels.append(label)

    def _session(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        label: FraudLabel | None,
    ) -> None:
        session_id = f"ses-{self.tag}-{plan.index}"
        signed_in = not plan.guest_start
        if signed_in:
            self._ensure_registered(http, account)
            self._sign_in(http, account, guest_cart_id=None, reuse=True)
        events = self._browse(http, plan, account, session_id, signed_in)
        if plan.outcome == "bounce":
            self._send_events(http, events, account if signed_in else None)
            return
        currency = account.profile.currency
        cart_id = self._open_cart(http, account, signed_in, currency)
        headers = bearer(account.token) if signed_in and account.token else {}
        lines = self._fill_cart(http, cart_id, plan.lines, headers)
        lines = self._edit_cart(http, plan, cart_id, lines, headers)
        self._send_events(http, events, account if signed_in else None)
        if plan.outcome == "abandon":
            self._count(carts_abandoned=1)
            return
        if not signed_in:
            # The guest signs up or in at checkout, taking the guest cart along.
            self._ensure_registered(http, account)
            cart_id = self._sign_in(http, account, guest_cart_id=cart_id, reuse=False) or cart_id
            self._count(cart_merges=1)
        for burst_index in range(plan.orders):
            if burst_index > 0:
                lines = self._fill_cart(http, cart_id, plan.lines, bearer(self._token(account)))
            if not lines:
                return  # nothing left in stock to buy
            self._checkout(http, plan, account, cart_id, burst_index, label)

    def _token(self, account: _Account) -> str:
        if account.token is None:
            raise SessionAborted("no token")
        return account.token

    def _ensure_registered(self, http: httpx.Client, account: _Account) -> None:
        if account.registered:
            return
        profile = account.profile
        response = self._call(
            http,
            "POST",
            "/v1/customers",
            (201, 409),
            json={
                "email": account.email,
                "password": PASSWORD,
                "name": profile.name,
                "region": profile.region,
                "locale": "en",
                "currency": profile.currency,
                "country": profile.country,
            },
        )
        if response.status_code == 201:
            account.customer_id = str(response.json()["customer_id"])
            self._count(registrations=1)
        account.registered = True  # 409: an earlier run with the same tag made it

    def _sign_in(
        self, http: httpx.Client, account: _Account, *, guest_cart_id: str | None, reuse: bool
    ) -> str | None:
        """Sign in (or reuse a recent token); the customer's cart id after any merge."""
        if reuse and account.token and time.monotonic() - account.token_at < TOKEN_REUSE_S:
            return account.cart_id
        body: dict[str, Any] = {"email": account.email, "password": PASSWORD}
        if guest_cart_id is not None:
            body["guest_cart_id"] = guest_cart_id
        session = self._call(http, "POST", "/v1/auth/token", (200,), json=body).json()
        account.token = str(session["access_token"])
        account.token_at = time.monotonic()
        account.customer_id = str(session["customer_id"])
        if session.get("cart_id"):
            account.cart_id = str(session["cart_id"])
        self._count(logins=1)
        return account.cart_id

    def _browse(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        session_id: str,
        signed_in: bool,
    ) -> list[dict[str, Any]]:
        """Search, view and click as planned; the behaviour events to send."""
        headers = bearer(account.token) if signed_in and account.token else {}
        customer_id = account.customer_id if signed_in else None
        currency = account.profile.currency
        events: list[dict[str, Any]] = []
        search_id = f"srch-{self.tag}-{plan.index}"
        if plan.search_query is not None:
            found = self._call(
                http,
                "GET",
                "/v1/products",
                (200,),
                params={"category": plan.search_category, "page": 1, "page_size": 20},
                headers=headers,
            ).json()
            items = found.get("items", []) if isinstance(found, dict) else found
            total = found.get("total", len(items)) if isinstance(found, dict) else len(items)
            events.append(
                _event(
                    "search.performed",
                    search_id=search_id,
                    session_id=session_id,
                    customer_id=customer_id,
                    query=plan.search_query,
                    filters={"category": [plan.search_category or ""]},
                    result_count=int(total),
                    top_product_ids=[str(i["product_id"]) for i in items[:20]],
                )
            )
            self._count(searches=1)
        recommendation_id = f"rec-{self.tag}-{plan.index}"
        if plan.recommended:
            events.append(
                _event(
                    "recommendation.served",
                    recommendation_id=recommendation_id,
                    session_id=session_id,
                    customer_id=customer_id,
                    placement="home",
                    model="popularity",
                    product_ids=list(plan.recommended),
                )
            )
            self._count(recommendations_served=1)
        for view in plan.views:
            self._call(
                http,
                "GET",
                "/v1/products/{product_id}",
                (200,),
                path=f"/v1/products/{view.product_id}",
                headers=headers,
            )
            if view.source == "recommendation":
                events.append(
                    _event(
                        "recommendation.clicked",
                        recommendation_id=recommendation_id,
                        session_id=session_id,
                        customer_id=customer_id,
                        placement="home",
                        product_id=view.product_id,
                        position=view.position or 0,
                    )
                )
                self._count(recommendations_clicked=1)
            price = self.catalog.sku(view.sku).prices.get(currency)
            events.append(
                _event(
                    "product.viewed",
                    session_id=session_id,
                    customer_id=customer_id,
                    product_id=view.product_id,
                    sku=view.sku,
                    source=view.source,
                    search_id=search_id if view.source == "search" else None,
                    recommendation_id=(
                        recommendation_id if view.source == "recommendation" else None
                    ),
                    position=view.position,
                    price={"amount_minor": price, "currency": currency} if price else None,
                )
            )
            self._count(views=1)
        return events

    def _send_events(
        self, http: httpx.Client, events: Sequence[dict[str, Any]], account: _Account | None
    ) -> None:
        headers = bearer(account.token) if account is not None and account.token else {}
        for batch in chunked(events, self.config.event_batch):
            self._call(
                http,
                "POST",
                "/v1/events",
                (200, 201, 202),
                json={"events": list(batch)},
                headers=headers,
            )
            self._count(events_sent=len(batch))

    def _open_cart(
        self, http: httpx.Client, account: _Account, signed_in: bool, currency: str
    ) -> str:
        if signed_in and account.cart_id:
            return account.cart_id
        headers = bearer(self._token(account)) if signed_in else {}
        created = self._call(
            http, "POST", "/v1/carts", (200, 201), json={"currency": currency}, headers=headers
        ).json()
        cart_id = str(created["cart_id"])
        if signed_in:
            account.cart_id = cart_id
        self._count(carts=1)
        return cart_id

    def _fill_cart(
        self,
        http: httpx.Client,
        cart_id: str,
        lines: Sequence[LinePlan],
        headers: Mapping[str, str],
    ) -> list[LinePlan]:
        """Add the planned lines; the ones the cart accepted (409: out of stock)."""
        accepted = []
        for line in lines:
            response = self._call(
                http,
                "POST",
                "/v1/carts/{cart_id}/items",
                (200, 201, 409),
                path=f"/v1/carts/{cart_id}/items",
                json={"sku": line.sku, "quantity": line.quantity},
                headers=headers,
            )
            if response.status_code == 409:
                self._count(items_refused=1)
            else:
                accepted.append(line)
                self._count(items_added=1)
        return accepted

    def _edit_cart(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        cart_id: str,
        lines: list[LinePlan],
        headers: Mapping[str, str],
    ) -> list[LinePlan]:
        if plan.edit == "remove" and len(lines) > 1:
            gone = lines[-1]
            self._call(
                http,
                "DELETE",
                "/v1/carts/{cart_id}/items/{sku}",
                (200, 204),
                path=f"/v1/carts/{cart_id}/items/{gone.sku}",
                headers=headers,
            )
            return lines[:-1]
        if plan.edit == "bump" and lines:
            first = lines[0]
            response = self._call(
                http,
                "PATCH",
                "/v1/carts/{cart_id}/items/{sku}",
                (200, 409),
                path=f"/v1/carts/{cart_id}/items/{first.sku}",
                json={"quantity": first.quantity + 1},
                headers=headers,
            )
            if response.status_code == 200:
                return [LinePlan(first.sku, first.quantity + 1), *lines[1:]]
            self._count(items_refused=1)
        return lines

    def _shipping_address(
        self, http: httpx.Client, plan: SessionPlan, account: _Account
    ) -> dict[str, Any]:
        profile = account.profile
        if plan.ship_region is not None:
            country = SHOPPER_COUNTRIES[plan.ship_region][0]
            return {"full_name": profile.name, "country": country, **ADDRESS_BOOK[country]}
        if account.address_id is None:
            saved = self._call(
                http,
                "POST",
                "/v1/customers/me/addresses",
                (201,),
                json={
                    "full_name": profile.name,
                    "country": profile.country,
                    **ADDRESS_BOOK[profile.country],
                },
                headers=bearer(self._token(account)),
            ).json()
            account.address_id = str(saved["address_id"])
        return {"address_id": account.address_id}

    def _checkout(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        cart_id: str,
        burst_index: int,
        label: FraudLabel | None,
    ) -> None:
        headers = bearer(self._token(account))
        address = self._shipping_address(http, plan, account)
        card = plan.card if burst_index == 0 else "ok"
        for attempt in range(3):  # the first try, a retry after a decline or a stock-out
            key = f"sim-{self.tag}-{plan.index}-{burst_index}-{attempt}"
            body = {
                "cart_id": cart_id,
                "shipping_address": address,
                "payment_method": _card(card),
            }
            self._count(checkouts_attempted=1)
            response = self._call(
                http,
                "POST",
                "/v1/checkout",
                (200, 201, 402, 409),
                json=body,
                headers={**headers, "Idempotency-Key": key},
            )
            if plan.replay and attempt == 0:
                self._replay(http, body, headers, key, response)
            if response.status_code in (200, 201):
                self._placed(http, plan, account, response.json(), label)
                return
            problem = response.json()
            if response.status_code == 402:
                self._count(checkouts_declined=1)
                if not plan.retry_declined or card == "ok":
                    return
                card = "ok"
                continue
            if problem.get("code") != "insufficient_stock":
                with self._lock:
                    self.report.unexpected[f"POST /v1/checkout → 409 {problem.get('code')}"] += 1
                    self._sample(f"POST /v1/checkout → 409: {response.text[:300]}")
                raise SessionAborted("checkout conflict")
            self._count(checkouts_out_of_stock=1)
            if not self._drop_skus(http, cart_id, problem.get("skus") or [], headers):
                return

    def _replay(
        self,
        http: httpx.Client,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        key: str,
        first: httpx.Response,
    ) -> None:
        """Send the same checkout again with the same key: the same answer must come back."""
        again = self._call(
            http,
            "POST",
            "/v1/checkout",
            (200, 201, 402, 409),
            json=body,
            headers={**headers, "Idempotency-Key": key},
        )
        # The server must answer from its idempotency record: same status, same order, and
        # the Idempotent-Replayed header saying it did not run the checkout again.
        same = (
            again.status_code == first.status_code
            and again.headers.get(REPLAYED_HEADER, "").lower() == "true"
            and (
                first.status_code not in (200, 201)
                or again.json().get("order_id") == first.json().get("order_id")
            )
        )
        if same:
            self._count(idempotent_replays=1)
        else:
            with self._lock:
                self.report.replay_mismatches += 1
                self._sample(
                    f"replay of {key}: {first.status_code} {first.text[:120]} then "
                    f"{again.status_code} {again.text[:120]}"
                )

    def _drop_skus(
        self, http: httpx.Client, cart_id: str, skus: Sequence[str], headers: Mapping[str, str]
    ) -> bool:
        """Remove sold-out SKUs from the cart; whether anything is left to buy."""
        for sku in skus:
            self._call(
                http,
                "DELETE",
                "/v1/carts/{cart_id}/items/{sku}",
                (200, 204, 404),
                path=f"/v1/carts/{cart_id}/items/{sku}",
                headers=headers,
            )
        cart = self._call(
            http,
            "GET",
            "/v1/carts/{cart_id}",
            (200,),
            path=f"/v1/carts/{cart_id}",
            headers=headers,
        ).json()
        return bool(cart.get("lines"))

    def _placed(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        order: Mapping[str, Any],
        label: FraudLabel | None,
    ) -> None:
        order_id = str(order["order_id"])
        record = OrderRecord(
            order_id=order_id,
            customer_id=account.customer_id or "",
            currency=account.profile.currency,
            session=plan.index,
            fraud=plan.fraud,
            lines=plan.lines,
        )
        with self._lock:
            self.report.checkouts_succeeded += 1
            self.report.orders[order_id] = record
        if label is not None:
            label.order_ids.append(order_id)
        if plan.cancel:
            headers = bearer(self._token(account))
            self._call(
                http,
                "GET",
                "/v1/orders/{order_id}",
                (200,),
                path=f"/v1/orders/{order_id}",
                headers=headers,
            )
            cancelled = self._call(
                http,
                "POST",
                "/v1/orders/{order_id}/cancel",
                (200, 409),
                path=f"/v1/orders/{order_id}/cancel",
                json={"reason": "customer_request"},
                headers=headers,
            )
            if cancelled.status_code == 200:
                record.cancelled = True
                self._count(cancels=1)


def _event(event_type: str, **payload: Any) -> dict[str, Any]:
    """A tracking event as ``POST /v1/events`` takes it (None fields left out)."""
    return {
        "type": event_type,
        "payload": {key: value for key, value in payload.items() if value is not None},
    }


def _card(card: Card) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {
            "number": CARDS[card],
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 3,
            "cvc": "123",
        },
    }


def run_simulation(
    base_url: str,
    catalog: SeededCatalog,
    config: SimulationConfig,
    *,
    console: Console | None = None,
    show_progress: bool = True,
    tag: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SimulationReport:
    """Run one simulation and return its report."""
    simulation = Simulation(
        base_url,
        catalog,
        config,
        console=console,
        show_progress=show_progress,
        tag=tag,
        transport=transport,
    )
    return simulation.run()


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
            "recommendations served / clicked",
            f"{report.recommendations_served} / {report.recommendations_clicked}",
        ),
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
    tables = [did, latency]
    if report.unexpected:
        odd = Table(title="Unexpected answers (first samples below)")
        odd.add_column("call → status")
        odd.add_column("count", justify="right")
        for what, count in report.unexpected.most_common():
            odd.add_row(what, str(count))
        tables.append(odd)
    return tables


# -- invariants and serving, for the demo, the benchmark and the tests -------------------------


@dataclass(frozen=True)
class StockAudit:
    """Seeded stock against what PostgreSQL holds now and what live orders sold."""

    skus: int
    seeded: int  # units seeded
    on_hand: int  # units on hand now
    reserved: int  # units held by open reservations now
    sold: int  # units on orders that are neither cancelled nor returned
    invalid: list[str]  # SKUs with a negative count or more reserved than on hand
    oversold: dict[str, int]  # SKU → units sold beyond what was seeded
    drift: dict[str, int]  # SKU → (units gone from stock) - (units on live orders)

    @property
    def ok(self) -> bool:
        """Nothing oversold, no count negative or inconsistent."""
        return not self.invalid and not self.oversold


def audit_stock(engine: Engine, seeded: Mapping[str, int]) -> StockAudit:
    """Compare the seeded units of each SKU with PostgreSQL's stock levels and order lines."""
    skus = sorted(seeded)
    with engine.connect() as connection:
        levels = {
            row.sku: row
            for row in connection.execute(
                text(
                    "SELECT sku, sum(on_hand) AS on_hand, sum(reserved) AS reserved, "
                    "bool_or(on_hand < 0 OR reserved < 0 OR reserved > on_hand) AS invalid "
                    "FROM stock_levels WHERE sku = ANY(:skus) GROUP BY sku"
                ),
                {"skus": skus},
            )
        }
        sold: dict[str, int] = {
            row.sku: int(row.units)
            for row in connection.execute(
                text(
                    "SELECT l.sku, sum(l.quantity) AS units FROM order_lines AS l "
                    "JOIN orders AS o USING (region, order_id) WHERE l.sku = ANY(:skus) "
                    "AND o.status NOT IN ('cancelled', 'returned') GROUP BY l.sku"
                ),
                {"skus": skus},
            )
        }
    on_hand = {sku: int(levels[sku].on_hand) if sku in levels else 0 for sku in skus}
    drift = {
        sku: (seeded[sku] - on_hand[sku]) - sold.get(sku, 0)
        for sku in skus
        if seeded[sku] - on_hand[sku] != sold.get(sku, 0)
    }
    return StockAudit(
        skus=len(skus),
        seeded=sum(seeded.values()),
        on_hand=sum(on_hand.values()),
        reserved=sum(int(row.reserved) for row in levels.values()),
        sold=sum(sold.values()),
        invalid=sorted(sku for sku, row in levels.items() if row.invalid),
        oversold={sku: sold[sku] - seeded[sku] for sku in skus if sold.get(sku, 0) > seeded[sku]},
        drift=drift,
    )


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(
    settings: Settings, database_url: str, redis_url: str, kafka_bootstrap: str | None = None
) -> dict[str, str]:
    """SOUK_* variables for a `souk serve` child on these servers, with this run's settings.

    Password hashing is made cheap: simulated shoppers sign in far more often than people.
    """
    env = {
        "SOUK_HOME": str(settings.state_dir),
        "SOUK_DATABASE_URL": database_url,
        "SOUK_REDIS_URL": redis_url,
        "SOUK_JWT_SECRET": settings.jwt_secret,
        "SOUK_REGION": settings.region,
        "SOUK_REGIONS": ",".join(settings.regions),
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
    }
    if kafka_bootstrap is not None:
        env["SOUK_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    return env


@contextmanager
def serve_subprocess(
    env: Mapping[str, str], *, log_path: Path | None = None, timeout_s: float = 60.0
) -> Iterator[str]:
    """Run `souk serve` (without its relay) in a child process; yields its base URL.

    A separate process keeps the server off the load generator's GIL. Its output goes to
    ``log_path`` when given.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "souk",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-relay",
        "--log-level",
        "WARNING",
    ]
    with ExitStack() as resources:
        log = resources.enter_context(log_path.open("ab")) if log_path is not None else None
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    tail = ""
                    if log_path is not None:
                        lines = log_path.read_text(errors="replace").strip().splitlines()
                        tail = f" ({log_path}): {' | '.join(lines[-5:])}"
                    raise ServerFailed(
                        f"`souk serve` exited with status {process.returncode}{tail}"
                    )
                try:
                    if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerFailed(f"`souk serve` did not answer on {url} in {timeout_s:.0f} s")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
