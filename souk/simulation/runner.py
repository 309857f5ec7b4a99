"""Plays the shopper model's session plans against a Souk server over its public HTTP API.

``Simulation`` runs the plans with a pool of worker threads, sessions arriving open-loop at a
fixed rate, and counts what happened (latency per endpoint included) in a ``SimulationReport``,
labelling the accounts and orders of fraud-like sessions.

Shoppers search and get recommendations through the serving endpoints: a planned search is a
``GET /v1/search`` whose ``search_id``, result count, top hits and index version go back in
``search.performed``, and whose hits are the products opened from it; a planned widget is a
recommendations list (for-you, similar or the feed) that the server itself reports as served,
and a planned click lands on the served item at the planned position, sent back as
``recommendation.clicked`` with the list's ``recommendation_id``.

Every request of a session says where it comes from: the shopper's device (``X-Device-Id``)
and the session's address (``X-Forwarded-For``: the simulator talks to the server over
loopback, a trusted proxy). Cards are the sandbox's: any Luhn-valid number is authorised,
its documented test numbers decline; each shopper's own card is a number of its own, and its
failing card a test number with an expiry of its own (the instrument id the checkout derives
tells cards apart by number and expiry).

Money (with a payment mix, see ``with_money``): wallet payers top up first (by card, some as
a step of their own); a split pays part from the wallet; EMI names a bank and term; a 3-D
Secure card answers 202 and the shopper confirms the challenge or leaves it to expire; a UPI
payer's collect is answered by the sandbox payers (``UpiPayer``), whose signed webhooks the
simulator delivers, then the checkout is asked again with its key. With an admin token, a
share of paid orders is delivered and partly returned (some units damaged) and refunded.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import secrets
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from souk.seed import SeededCatalog, bearer, chunked
from souk.simulation.model import (
    SHOPPER_COUNTRIES,
    Card,
    LinePlan,
    Method,
    SessionPlan,
    ShopperModel,
    ShopperProfile,
    SimulationConfig,
    ViewPlan,
)
from souk.simulation.report import FraudLabel, OrderRecord, SimulationReport
from transactional.shared.errors import SoukError

# Sandbox cards: the gateway's documented test numbers.
CARDS: dict[str, str] = {
    "ok": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
}
# The sandbox's card whose issuer asks for a 3-D Secure step-up.
THREE_DS_CARD = "4000002760003184"
# UPI sandbox VPAs: the payer declines, or never answers (any other VPA approves).
UPI_VPAS = {"decline": "failure@souk", "timeout": "timeout@souk"}
MAX_TOPUP_MINOR = 1_000_000  # the wallet's limit per top-up (transactional.payments.wallet)
# The checkout's answer once a payer's deadline passed unanswered (409).
ACTION_EXPIRED = "payment_action_expired"
# A wallet payer's cart dearer than this many top-ups is paid wallet + card (split).
MAX_WALLET_TOPUPS = 3
# What a wallet payer tops up beyond the cart's subtotal: shipping and US sales tax on top.
WALLET_HEADROOM = 0.15
# The declining test numbers a card tester runs through (with ever other expiries).
TEST_DECLINES = (CARDS["declined"], CARDS["insufficient_funds"], "4000000000000069")
# Expiries (month, year) give cards with one test number distinct ids: shoppers' own cards
# take the first ten years ahead, a card tester's the ten after (the sandbox takes 20).
EXPIRY_SLOTS = 120
DEVICE_HEADER = "X-Device-Id"
FORWARDED_HEADER = "X-Forwarded-For"
REPLAYED_HEADER = "Idempotent-Replayed"  # set by POST /v1/checkout on a replayed answer
# A plausible street address per country (the simulation needs valid ones, not real ones).
ADDRESS_BOOK: dict[str, dict[str, str]] = {
    "DE": {"line1": "Invalidenstr. 116", "city": "Berlin", "postal_code": "10115"},
    "FR": {"line1": "12 Rue de Rivoli", "city": "Paris", "postal_code": "75001"},
    "ES": {"line1": "Calle Mayor 5", "city": "Madrid", "postal_code": "28013"},
    "IT": {"line1": "Via del Corso 10", "city": "Roma", "postal_code": "00186"},
    "NL": {"line1": "Damrak 1", "city": "Amsterdam", "postal_code": "1012LG"},
    "US": {
        "line1": "500 Congress Ave",
        "city": "Austin",
        "subdivision": "TX",
        "postal_code": "78701",
    },
    "IN": {"line1": "12 MG Road", "city": "Bengaluru", "postal_code": "560001"},
}
# US shoppers live in several states (sales tax is per state).
US_ADDRESSES: tuple[dict[str, str], ...] = (
    ADDRESS_BOOK["US"],
    {"line1": "1 Market St", "city": "San Francisco", "subdivision": "CA", "postal_code": "94105"},
    {"line1": "350 5th Ave", "city": "New York", "subdivision": "NY", "postal_code": "10118"},
)
PASSWORD = "simulated-shopper-pw"  # synthetic accounts on a local stack


def address_of(country: str, shopper: int) -> dict[str, str]:
    """The street address of a shopper in ``country`` (US shoppers spread over states)."""
    if country == "US":
        return dict(US_ADDRESSES[shopper % len(US_ADDRESSES)])
    return dict(ADDRESS_BOOK[country])


class Webhook(Protocol):
    """A signed delivery of a payment provider (transactional.payments.webhooks)."""

    @property
    def provider(self) -> str:
        """The provider's name in the webhook path."""

    @property
    def body(self) -> bytes:
        """The raw signed body."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The signature header."""


class UpiPayer(Protocol):
    """The UPI payers' side (the sandbox provider): answers waiting collects as their VPAs
    say and hands back the signed webhooks to deliver."""

    def deliver(self, reference: str | None = None, *, limit: int = 100) -> Sequence[Webhook]:
        """The signed webhooks of every answer not acknowledged yet."""

    def acknowledge(self, reference: str) -> None:
        """The server took the delivery: it is not sent again."""


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
    # A checkout of the account's cart still waits on the payer (a step-up left to expire,
    # a UPI collect nobody answered): the cart is checked out once at a time meanwhile.
    waiting: bool = False


@dataclass
class _Waiting:
    """A checkout still waiting on the payer: asked again when the run ends."""

    plan: SessionPlan
    account: _Account
    key: str
    body: dict[str, Any]
    order_id: str


TOKEN_REUSE_S = 600.0  # a returning visitor within this window is still signed in
SEARCH_PAGE_SIZE = 20  # hits on the results page a shopper looks at
TOP_PRODUCT_IDS = 20  # of them, carried in search.performed


@dataclass(frozen=True)
class _Visit:
    """Who browses in a session, from where, signed in or not."""

    plan: SessionPlan
    profile: ShopperProfile
    session_id: str
    customer_id: str | None  # None for a guest
    headers: Mapping[str, str]  # the bearer token when signed in


@dataclass(frozen=True)
class _Searched:
    """A search the server answered: its id and the hits' product ids, best first."""

    search_id: str
    hits: tuple[str, ...]


@dataclass(frozen=True)
class _Widget:
    """A served recommendation list: its id, placement and (product id, position) items."""

    recommendation_id: str
    placement: str
    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class _Shown:
    """A product page a shopper opens, and the list it was picked from."""

    product_id: str
    sku: str | None  # None: one of the product's own (a server's pick, not the plan's)
    source: str
    position: int | None = None
    search_id: str | None = None
    recommendation_id: str | None = None


def _from_search(view: ViewPlan, searched: _Searched | None) -> _Shown | None:
    """The hit at the planned position; with no results (or no search answered) the shopper
    browses the category instead and opens the plan's product; nothing when the results are
    fewer than the position."""
    if searched is None or not searched.hits:
        return _Shown(view.product_id, view.sku, "category", view.position)
    position = view.position or 0
    if position >= len(searched.hits):
        return None
    return _Shown(searched.hits[position], None, "search", position, searched.search_id)


def index_version(versions: Mapping[str, str | None]) -> str | None:
    """search.performed's index version: the one region's, or ``region:version`` pairs of
    a merged search (``-`` for a region without an index yet)."""
    if not versions:
        return None
    if len(versions) == 1:
        return next(iter(versions.values()))
    return ",".join(f"{region}:{version or '-'}" for region, version in sorted(versions.items()))


def luhn_number(seed: str, prefix: str = "49") -> str:
    """A 16-digit Luhn-valid card number drawn from ``seed`` (never a sandbox test number:
    those start with 40 or 42)."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    body = prefix + f"{digest % 10 ** (15 - len(prefix)):0{15 - len(prefix)}d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will sit to the right
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def _expiry(slot: int, first_year: int) -> tuple[int, int]:
    """(month, year) of an expiry slot, years counted from ``first_year``."""
    slot %= EXPIRY_SLOTS
    return slot % 12 + 1, first_year + slot // 12


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
        admin_token: str | None = None,
        upi_payer: UpiPayer | None = None,
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
        # The shop's admin moves paid orders to delivered and handles returns (no returns
        # without one); the UPI payers answer collect requests (they wait without one).
        self._admin = bearer(admin_token) if admin_token else None
        self._upi_payer = upi_payer
        self._payer_lock = threading.Lock()  # one delivery round at a time
        self._waiting: list[_Waiting] = []
        self._lock = threading.Lock()
        self._local = threading.local()  # the session's device and address headers
        self._year = datetime.now(UTC).year
        # Own cards' expiry slots: index * 7 (coprime with the slot count) spreads up to
        # EXPIRY_SLOTS shoppers over distinct slots.
        self._slot_base = int(hashlib.sha256(f"slots/{self.tag}".encode()).hexdigest(), 16)
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
        kwargs["headers"] = {**getattr(self._local, "headers", {}), **kwargs.get("headers", {})}
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
                            self._play(http, self.model.session(self.config.first_session + index))
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
        self._settle_waiting()
        self.report.elapsed_s = time.monotonic() - started
        self.report.customer_ids = {
            account.profile.index: account.customer_id
            for account in self.accounts
            if account.customer_id
        }
        self.report.customer_regions = {
            account.customer_id: account.profile.region
            for account in self.accounts
            if account.customer_id
        }
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
        owner = self.accounts[plan.shopper]
        label = FraudLabel(plan.index, "", plan.fraud_kinds) if plan.fraud else None
        # A throwaway account is opened on the fraudster's own device.
        account = (
            _Account(owner.profile, f"shopper-{self.tag}-{plan.shopper}-s{plan.index}@sim.souk.dev")
            if plan.fresh_account
            else owner
        )
        headers = {DEVICE_HEADER: self.device_id(owner.profile)}
        if plan.client_ip is not None:
            headers[FORWARDED_HEADER] = plan.client_ip
        with owner.lock:
            self._local.headers = headers
            try:
                self._session(http, plan, account, label)
            except SessionAborted:
                self._count(sessions_aborted=1)
            else:
                self._count(sessions=1)
            finally:
                self._local.headers = {}
                if label is not None:
                    label.customer_id = account.customer_id or ""
                    with self._lock:
                        self.report.fraud_sessions += 1
                        self.report.fraud_labels.append(label)

    # -- who pays, from where --

    def device_id(self, profile: ShopperProfile) -> str:
        """The shopper's one device (the run's tag keeps runs on one server apart)."""
        return f"dev-{self.tag}-{profile.device}"

    def own_card(self, profile: ShopperProfile, kind: Card) -> dict[str, Any]:
        """The shopper's own card: its good one (a number of its own), or its failing one (a
        test number with an expiry of its own)."""
        month, year = _expiry(self._slot_base + profile.index * 7, self._year + 1)
        number = luhn_number(f"own/{self.tag}/{profile.index}") if kind == "ok" else CARDS[kind]
        return _card(number, month, year)

    def stolen_card(self) -> dict[str, Any]:
        """The one stolen card every account of the fraud ring pays with."""
        return _card(luhn_number(f"stolen/{self.tag}"), 6, self._year + 3)

    def test_card(self, plan: SessionPlan, attempt: int) -> dict[str, Any]:
        """The ``attempt``-th card a card tester tries: a declining one, distinct from the
        others of the session and from every shopper's own."""
        month, year = _expiry(plan.index * 5 + attempt, self._year + 11)
        return _card(TEST_DECLINES[attempt % len(TEST_DECLINES)], month, year)

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
            if plan.topup == "separate":  # filling the wallet first, a step of its own
                self._top_up(http, plan, account, plan.topup_minor, separate=True)
        events = self._browse(http, plan, account, session_id, signed_in)
        if plan.outcome == "bounce":
            self._send_events(http, events, account if signed_in else None)
            return
        currency = account.profile.currency
        cart_id = self._open_cart(http, account, signed_in, currency)
        headers = bearer(account.token) if signed_in and account.token else {}
        lines = self._fill_cart(http, cart_id, plan.lines, headers, session_id)
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
                lines = self._fill_cart(
                    http, cart_id, plan.lines, bearer(self._token(account)), session_id
                )
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
        """Search, view and click as planned, on what the server answers; the events to send.

        The plan decides whether and at which position; the product at that position is the
        server's: a search hit, an item of the served recommendation list.
        """
        headers = bearer(account.token) if signed_in and account.token else {}
        customer_id = account.customer_id if signed_in else None
        visit = _Visit(plan, account.profile, session_id, customer_id, headers)
        events: list[dict[str, Any]] = []
        searched = self._search(http, visit, events) if plan.search_query is not None else None
        widget: _Widget | None = None
        last_viewed: str | None = None
        for view in plan.views:
            shown: _Shown | None
            if view.source == "search":
                shown = _from_search(view, searched)
            elif view.source == "recommendation":
                if widget is None:
                    widget = self._widget(http, visit, last_viewed)
                shown = self._click(widget, view, visit, events)
            else:
                shown = _Shown(view.product_id, view.sku, view.source, view.position)
            if shown is not None:
                self._view(http, visit, shown, events)
                last_viewed = shown.product_id
        if plan.recommended and widget is None:  # shown, not clicked
            self._widget(http, visit, last_viewed)
        return events

    def _search(
        self, http: httpx.Client, visit: _Visit, events: list[dict[str, Any]]
    ) -> _Searched | None:
        """GET /v1/search with the plan's words within its category; None if refused (429).

        Every region is searched (``region=all``): the shoppers browse the whole catalog, so
        their searches do too, and the hits stay in the category they came to browse.
        """
        plan = visit.plan
        response = self._call(
            http,
            "GET",
            "/v1/search",
            (200, 429),
            params={
                "q": plan.search_query,
                "category": plan.search_category,
                "currency": visit.profile.currency,
                "region": "all",
                "page_size": SEARCH_PAGE_SIZE,
            },
            headers=visit.headers,
        )
        if response.status_code == 429:
            self._count(serving_rate_limited=1)
            return None
        found = response.json()
        hits = tuple(str(hit["product_id"]) for hit in found["hits"])
        total = int(found["total"])
        events.append(
            _event(
                "search.performed",
                search_id=str(found["search_id"]),
                session_id=visit.session_id,
                customer_id=visit.customer_id,
                query=plan.search_query,
                filters={"category": [plan.search_category]} if plan.search_category else None,
                sort="relevance",
                page=1,
                result_count=total,
                top_product_ids=list(hits[:TOP_PRODUCT_IDS]),
                index_version=index_version(found.get("index_versions") or {}),
                latency_ms=max(0, round(float(found.get("took_ms") or 0))),
            )
        )
        self._count(
            searches=1, searches_with_results=int(total > 0), searches_zero_results=int(total == 0)
        )
        return _Searched(str(found["search_id"]), hits)

    def _widget(self, http: httpx.Client, visit: _Visit, last_viewed: str | None) -> _Widget:
        """The recommendation widget as the server fills it: for-you when signed in, else
        products similar to the last one viewed, else the home feed. The server emits its
        recommendation.served; an empty (or refused) list shows no widget."""
        params = {
            "limit": len(visit.plan.recommended),
            "region": visit.profile.region,
            "session_id": visit.session_id,
        }
        if visit.customer_id is not None and visit.headers:
            route = path = "/v1/recommendations/for-you"
        elif last_viewed is not None:
            route = "/v1/recommendations/similar/{product_id}"
            path = f"/v1/recommendations/similar/{last_viewed}"
        else:
            route = path = "/v1/feed"
        response = self._call(
            http, "GET", route, (200, 429), path=path, params=params, headers=visit.headers
        )
        if response.status_code == 429:
            self._count(serving_rate_limited=1)
            return _Widget("", "", ())
        served = response.json()
        items = tuple((str(i["product_id"]), int(i["position"])) for i in served["items"])
        with self._lock:
            if items:
                self.report.recommendations_served += 1
                self.report.recommendation_lists[
                    f"{served['model']} {served['model_version']}"
                ] += 1
            else:
                self.report.recommendations_empty += 1
        return _Widget(str(served["recommendation_id"]), str(served["placement"]), items)

    def _click(
        self, widget: _Widget, view: ViewPlan, visit: _Visit, events: list[dict[str, Any]]
    ) -> _Shown | None:
        """The planned click at the planned position of the served list (its last item when
        the list is shorter); nothing to click in an empty widget."""
        if not widget.items:
            return None
        product_id, position = widget.items[min(view.position or 0, len(widget.items) - 1)]
        events.append(
            _event(
                "recommendation.clicked",
                recommendation_id=widget.recommendation_id,
                session_id=visit.session_id,
                customer_id=visit.customer_id,
                placement=widget.placement,
                product_id=product_id,
                position=position,
            )
        )
        self._count(recommendations_clicked=1)
        return _Shown(
            product_id,
            None,
            "recommendation",
            position,
            recommendation_id=widget.recommendation_id,
        )

    def _view(
        self, http: httpx.Client, visit: _Visit, shown: _Shown, events: list[dict[str, Any]]
    ) -> None:
        """Open a product page; its product.viewed event (the SKU and price shown)."""
        page = self._call(
            http,
            "GET",
            "/v1/products/{product_id}",
            (200,),
            path=f"/v1/products/{shown.product_id}",
            headers=visit.headers,
        )
        sku, price = self._sku_shown(visit, shown, page)
        currency = visit.profile.currency
        events.append(
            _event(
                "product.viewed",
                session_id=visit.session_id,
                customer_id=visit.customer_id,
                product_id=shown.product_id,
                sku=sku,
                source=shown.source,
                search_id=shown.search_id,
                recommendation_id=shown.recommendation_id,
                position=shown.position,
                price={"amount_minor": price, "currency": currency} if price else None,
            )
        )
        self._count(views=1, views_from_search_hits=int(shown.search_id is not None))

    def _sku_shown(
        self, visit: _Visit, shown: _Shown, page: httpx.Response
    ) -> tuple[str | None, int | None]:
        """(SKU, price in the shopper's currency) of a viewed product: the plan's SKU, else
        one of the seeded product's, else one of the page's variants (a product this run did
        not seed); the choice is a function of the session's number."""
        currency = visit.profile.currency
        sku = shown.sku
        if sku is None:
            try:
                skus = self.catalog.product(shown.product_id).skus
            except KeyError:
                variants = page.json().get("variants") or []
                if not variants:
                    return None, None
                variant = variants[visit.plan.index % len(variants)]
                price = (variant.get("prices") or {}).get(currency)
                return str(variant["sku"]), int(price) if price is not None else None
            sku = skus[visit.plan.index % len(skus)].sku
        try:
            return sku, self.catalog.sku(sku).prices.get(currency)
        except KeyError:
            return sku, None

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
        session_id: str,
    ) -> list[LinePlan]:
        """Add the planned lines; the ones the cart accepted (409: out of stock). The
        storefront session goes along, so cart events join the session's views (funnels)."""
        accepted = []
        for line in lines:
            response = self._call(
                http,
                "POST",
                "/v1/carts/{cart_id}/items",
                (200, 201, 409),
                path=f"/v1/carts/{cart_id}/items",
                json={"sku": line.sku, "quantity": line.quantity, "session_id": session_id},
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
            return {
                "full_name": profile.name,
                "country": country,
                **address_of(country, profile.index),
            }
        if account.address_id is None:
            saved = self._call(
                http,
                "POST",
                "/v1/customers/me/addresses",
                (201,),
                json={
                    "full_name": profile.name,
                    "country": profile.country,
                    **address_of(profile.country, profile.index),
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
        method: Method = plan.payment if burst_index == 0 else "card"
        # The wallet and UPI have no failing card: only the card paths draw one.
        failing = burst_index == 0 and method not in ("wallet", "upi")
        card = plan.card if failing else "ok"
        tests = plan.test_cards if burst_index == 0 else 0
        wallet_minor = 0
        if method in ("wallet", "split"):
            method, wallet_minor = self._fund_wallet(http, plan, account, cart_id, headers)
        # Card tests first (each declined), then the first try, a retry after a decline or
        # after a stock-out.
        for attempt in range(tests + 3):
            key = f"sim-{self.tag}-{plan.index}-{burst_index}-{attempt}"
            testing = attempt < tests
            if testing:
                payment = self.test_card(plan, attempt)
            elif card == "ok" and plan.stolen_card:
                payment = self.stolen_card()
            else:
                payment = self.payment_method(plan, account.profile, method, card, wallet_minor)
            body = {"cart_id": cart_id, "shipping_address": address, "payment_method": payment}
            self._count(checkouts_attempted=1)
            response = self._call(
                http,
                "POST",
                "/v1/checkout",
                (200, 201, 202, 402, 409),
                json=body,
                headers={**headers, "Idempotency-Key": key},
            )
            blocked = response.status_code == 409 and account.waiting
            if blocked and response.json().get("code") == "checkout_in_progress":
                # The shopper's earlier checkout of this cart still waits on the payer.
                self._count(checkouts_blocked=1)
                return
            if plan.replay and attempt == 0:
                self._replay(http, body, headers, key, response)
            if response.status_code == 202:
                waiting = _Waiting(plan, account, key, body, str(response.json()["order_id"]))
                self._awaiting(http, waiting, method, response.json(), label)
                return
            if response.status_code in (200, 201):
                held = response.json().get("status") == "on_hold"  # a fraud review decides
                self._outcome(method, "held" if held else "paid")
                record = self._placed(http, plan, account, response.json(), label, method)
                if held:
                    record.status = "held"
                if plan.second_tab:
                    self._second_tab(http, body, headers, key, response.json())
                if not held:
                    self._return(http, plan, account, record)
                return
            problem = response.json()
            if response.status_code == 402:
                self._count(checkouts_declined=1)
                if testing:
                    continue
                self._outcome(method, "declined")
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

    def payment_method(
        self,
        plan: SessionPlan,
        profile: ShopperProfile,
        method: Method,
        card: Card,
        wallet_minor: int = 0,
    ) -> dict[str, Any]:
        """The checkout's ``payment_method`` for the planned method (the shopper's own
        card, or its failing one, where a card is part of it)."""
        if method == "wallet":
            return {"type": "wallet"}
        if method == "upi":
            return {"type": "upi", "vpa": self.vpa(plan, profile)}
        own = self.own_card(profile, card)
        if method == "card_3ds" and card == "ok":
            own["card"]["number"] = THREE_DS_CARD  # the issuer asks for a step-up
        if method == "split":
            own["wallet_amount_minor"] = max(1, wallet_minor)
        if method == "emi":
            emi = {"months": plan.emi_months, "bank": plan.emi_bank}
            return {"type": "emi", "card": own["card"], "emi": emi}
        return own

    def vpa(self, plan: SessionPlan, profile: ShopperProfile) -> str:
        """The UPI id a shopper pays from: the sandbox's declining or silent one as planned,
        else one of its own (any other VPA approves)."""
        return UPI_VPAS.get(plan.upi_answer) or f"shopper.{self.tag}{profile.index}@oksouk"

    # -- wallet --

    def _fund_wallet(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        cart_id: str,
        headers: Mapping[str, str],
    ) -> tuple[Method, int]:
        """Top the wallet up to what the planned payment takes from it: (method, that
        amount): the wallet's part of a split, else the whole estimated total; a cart dearer
        than MAX_WALLET_TOPUPS top-ups is paid wallet + card instead."""
        currency = account.profile.currency
        cart = self._call(
            http, "GET", "/v1/carts/{cart_id}", (200,), path=f"/v1/carts/{cart_id}", headers=headers
        ).json()
        subtotal = int(cart.get("subtotal_minor") or 0)
        if plan.payment == "split":
            need = max(1, int(subtotal * plan.wallet_share))
        else:
            need = math.ceil(subtotal * (1 + WALLET_HEADROOM)) + 100
        method: Method = plan.payment
        if need > MAX_WALLET_TOPUPS * MAX_TOPUP_MINOR:
            method, need = "split", min(subtotal, MAX_WALLET_TOPUPS * MAX_TOPUP_MINOR)
        wallet = self._call(
            http, "GET", "/v1/wallet", (200,), params={"currency": currency}, headers=headers
        ).json()
        missing = need - int(wallet["balance_minor"])
        if missing > 0:
            self._top_up(http, plan, account, max(missing, plan.topup_minor))
        return method, need

    def _top_up(
        self,
        http: httpx.Client,
        plan: SessionPlan,
        account: _Account,
        amount_minor: int,
        *,
        separate: bool = False,
    ) -> None:
        """Pay ``amount_minor`` into the wallet with the shopper's good card (in top-ups of
        the wallet's limit at most), each with its own Idempotency-Key."""
        currency = account.profile.currency
        step = "first" if separate else "checkout"
        chunks = math.ceil(amount_minor / MAX_TOPUP_MINOR)
        for n in range(chunks):
            amount = min(MAX_TOPUP_MINOR, amount_minor - n * MAX_TOPUP_MINOR)
            response = self._call(
                http,
                "POST",
                "/v1/wallet/top-ups",
                (201, 402),
                json={
                    "amount_minor": amount,
                    "currency": currency,
                    "card": self.own_card(account.profile, "ok")["card"],
                },
                headers={
                    **bearer(self._token(account)),
                    "Idempotency-Key": f"sim-{self.tag}-{plan.index}-topup-{step}-{n}",
                },
            )
            if response.status_code == 402:
                self._count(topups_declined=1)
                return
            with self._lock:
                self.report.topups += 1
                self.report.topups_separate += int(separate)
                self.report.topped_up_minor[currency] += amount

    # -- payments that wait on the payer --

    def _outcome(self, method: str, outcome: str) -> None:
        with self._lock:
            self.report.payments[(method, outcome)] += 1

    def _awaiting(
        self,
        http: httpx.Client,
        waiting: _Waiting,
        method: Method,
        answer: Mapping[str, Any],
        label: FraudLabel | None,
    ) -> None:
        """A checkout answered 202: the shopper confirms or abandons its 3-D Secure step-up;
        a UPI payer answers in its app (the sandbox payers deliver the webhooks)."""
        plan, account = waiting.plan, waiting.account
        record = self._placed(http, plan, account, answer, label, method, paid=False)
        action = answer.get("next_action") or {}
        if action.get("type") == "three_d_secure":
            if plan.step_up == "abandon":
                account.waiting = True
                record.status = "abandoned"
                self._outcome(method, "abandoned")
                self._count(step_ups_abandoned=1)
                return
            confirmed = self._call(
                http,
                "POST",
                "/v1/payments/{payment_id}/3ds/confirm",
                (200,),
                path=str(action["url"]),
                json={"outcome": "approve"},
                headers=bearer(self._token(account)),
            ).json()
            self._count(step_ups_confirmed=1)
            if confirmed.get("status") == "captured":
                self._paid(record, method)
                self._return(http, plan, account, record)
            else:
                record.status = "declined"
                self._outcome(method, "declined")
            return
        self._deliver_upi(http)
        self._settle(http, waiting, record, final=False)

    def _paid(self, record: OrderRecord, method: str) -> None:
        record.status = "paid"
        self._outcome(method, "paid")
        self._count(checkouts_succeeded=1)

    def _deliver_upi(self, http: httpx.Client) -> None:
        """The UPI payers answer every waiting collect request; each signed webhook goes to
        the server (a 409: delivered already, by another round)."""
        payer = self._upi_payer
        if payer is None:
            return
        with self._payer_lock:
            for webhook in payer.deliver():
                self._call(
                    http,
                    "POST",
                    "/v1/payments/webhooks/{provider}",
                    (200, 409),
                    path=f"/v1/payments/webhooks/{webhook.provider}",
                    content=webhook.body,
                    headers={**webhook.headers, "Content-Type": "application/json"},
                )
                payer.acknowledge(str(json.loads(webhook.body)["data"]["reference"]))
                self._count(webhooks_delivered=1)

    def _settle(
        self, http: httpx.Client, waiting: _Waiting, record: OrderRecord, *, final: bool
    ) -> None:
        """Ask the UPI checkout again (same key): paid, declined, expired or still waiting
        (then asked once more when the run ends, unless ``final``)."""
        plan, account = waiting.plan, waiting.account
        response = self._call(
            http,
            "POST",
            "/v1/checkout",
            (201, 202, 402, 409),
            json=waiting.body,
            headers={**bearer(self._token(account)), "Idempotency-Key": waiting.key},
        )
        if response.status_code == 409 and response.json().get("code") != ACTION_EXPIRED:
            with self._lock:
                self.report.unexpected[
                    f"POST /v1/checkout → 409 {response.json().get('code')}"
                ] += 1
                self._sample(f"UPI checkout {waiting.key}: {response.text[:300]}")
            raise SessionAborted("checkout conflict")
        if response.status_code == 201:
            account.waiting = False
            self._count(upi_approved=1)
            self._paid(record, "upi")
            self._return(http, plan, account, record)
        elif response.status_code in (402, 409):
            # 409 payment_action_expired: the saga's deadline passed before any answer.
            account.waiting = False
            code = response.json().get("decline_code") or response.json().get("code")
            expired = code in ("collect_expired", ACTION_EXPIRED)
            record.status = "expired" if expired else "declined"
            self._outcome("upi", record.status)
            self._count(upi_expired=int(expired), upi_declined=int(not expired))
        elif final:
            record.status = "pending"
            self._outcome("upi", "pending")
            self._count(upi_pending=1)
        else:
            account.waiting = True
            with self._lock:
                self._waiting.append(waiting)

    def _settle_waiting(self) -> None:
        """When the run ends: the payers answer once more (lapsed collects expire), and each
        checkout still waiting is asked how it ended."""
        if not self._waiting:
            return
        with httpx.Client(
            base_url=self.base_url, timeout=self.config.timeout_s, transport=self._transport
        ) as http:
            try:
                self._deliver_upi(http)
                for waiting in self._waiting:
                    self._settle(http, waiting, self.report.orders[waiting.order_id], final=True)
            except SessionAborted:
                self._count(sessions_aborted=1)

    # -- returns --

    def _return(
        self, http: httpx.Client, plan: SessionPlan, account: _Account, record: OrderRecord
    ) -> None:
        """The admin delivers a paid order; the shopper sends some lines back, the returns
        desk approves, inspects (some units damaged) and the refund goes out."""
        admin = self._admin
        if not plan.return_lines or plan.cancel or admin is None:
            return
        order_id = record.order_id
        for to in ("packed", "shipped", "delivered"):
            self._call(
                http,
                "POST",
                "/v1/admin/orders/{order_id}/transitions",
                (200,),
                path=f"/v1/admin/orders/{order_id}/transitions",
                json={"to": to, "cause": "simulated fulfilment"},
                headers=admin,
            )
        self._count(deliveries=1)
        mine = bearer(self._token(account))
        order = self._call(
            http,
            "GET",
            "/v1/orders/{order_id}",
            (200,),
            path=f"/v1/orders/{order_id}",
            headers=mine,
        ).json()
        lines = order["lines"][: plan.return_lines]
        damaged = {line["line_id"] for line in lines[: plan.damaged_lines]}
        asked = self._call(
            http,
            "POST",
            "/v1/orders/{order_id}/returns",
            (201, 422),
            path=f"/v1/orders/{order_id}/returns",
            json={
                "lines": [
                    {
                        "line_id": line["line_id"],
                        "quantity": line["quantity"],
                        "reason": "defective" if line["line_id"] in damaged else "no_longer_needed",
                    }
                    for line in lines
                ]
            },
            headers=mine,
        )
        if asked.status_code == 422:  # outside the window (groceries are not returned)
            self._count(returns_refused=1)
            return
        self._count(returns_requested=1)
        return_id = str(asked.json()["return_id"])
        self._call(
            http,
            "POST",
            "/v1/returns/{return_id}/approve",
            (200,),
            path=f"/v1/returns/{return_id}/approve",
            json={},
            headers=admin,
        )
        received = self._call(
            http,
            "POST",
            "/v1/returns/{return_id}/receive",
            (200,),
            path=f"/v1/returns/{return_id}/receive",
            json={
                "lines": [
                    {
                        "line_id": line["line_id"],
                        "resellable": 0 if line["line_id"] in damaged else line["quantity"],
                        "damaged": line["quantity"] if line["line_id"] in damaged else 0,
                    }
                    for line in lines
                ]
            },
            headers=admin,
        ).json()
        refund = received.get("refund") or {}
        with self._lock:
            self.report.returned_lines_damaged += len(damaged)
            if received.get("status") == "refunded" and refund:
                amount = int(refund["amount"]["amount_minor"])
                self.report.returns_refunded += 1
                self.report.refunded_minor[str(refund["amount"]["currency"])] += amount
                record.returned = True
                record.refunded_minor += amount

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
            (200, 201, 202, 402, 409),
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

    def _second_tab(
        self,
        http: httpx.Client,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        key: str,
        paid: Mapping[str, Any],
    ) -> None:
        """Check the bought cart out again from another tab: refused, naming the order."""
        again = self._call(
            http,
            "POST",
            "/v1/checkout",
            (409, 422),
            json=body,
            headers={**headers, "Idempotency-Key": f"{key}-tab"},
        )
        problem = again.json()
        refused = (problem.get("code"), problem.get("reason"), problem.get("order_id")) == (
            "invalid_cart",
            "already_checked_out",
            paid.get("order_id"),
        ) or problem.get("code") == "checkout_in_progress"
        with self._lock:
            if refused:
                self.report.second_tabs_refused += 1
            else:
                self.report.unexpected[f"second tab → {again.status_code}"] += 1
                self._sample(f"second tab of {key}: {again.status_code} {again.text[:200]}")

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
        method: str = "card",
        *,
        paid: bool = True,
    ) -> OrderRecord:
        """Record an order the checkout placed (paid, or waiting on the payer); cancel it
        if the plan says so (a paid one)."""
        order_id = str(order["order_id"])
        record = OrderRecord(
            order_id=order_id,
            customer_id=account.customer_id or "",
            currency=account.profile.currency,
            session=plan.index,
            fraud=plan.fraud,
            lines=plan.lines,
            method=method,
            status="paid" if paid else "pending",
        )
        with self._lock:
            self.report.checkouts_succeeded += int(paid)
            self.report.orders[order_id] = record
        if label is not None:
            label.order_ids.append(order_id)
        if plan.cancel and paid:
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
        return record


def _event(event_type: str, **payload: Any) -> dict[str, Any]:
    """A tracking event as ``POST /v1/events`` takes it (None fields left out)."""
    return {
        "type": event_type,
        "payload": {key: value for key, value in payload.items() if value is not None},
    }


def _card(number: str, exp_month: int, exp_year: int) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"},
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
    admin_token: str | None = None,
    upi_payer: UpiPayer | None = None,
) -> SimulationReport:
    """Run one simulation and return its report (returns need ``admin_token``; UPI payers
    answer through ``upi_payer``)."""
    simulation = Simulation(
        base_url,
        catalog,
        config,
        console=console,
        show_progress=show_progress,
        tag=tag,
        transport=transport,
        admin_token=admin_token,
        upi_payer=upi_payer,
    )
    return simulation.run()
