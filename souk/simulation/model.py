"""The pure shopper decision model of ``souk simulate``: seeded profiles and session plans.

The shoppers' profiles and each session's plan depend only on the seed and the session's number,
so the same seed makes the same decisions whatever the thread timing or the server's answers. No
I/O here: ``souk.simulation.runner`` plays the plans against a server.

Every shopper has one device and a home IP address in its region's range (``ip_regions``), and
pays with its own card (one that declines, if the plan says so, and its good one). A small
share of sessions behaves like fraud; those sessions are marked in their plans so the report
can label their accounts and orders as ground truth for fraud detection. Fraud kinds:

- ``burst``: several orders in a row from one account;
- ``far_shipping``: shipped to the region farthest from the account's;
- ``high_value``: several expensive items, from a throwaway account opened in the session;
- ``foreign_ip``: the session comes from an address in a far region's range;
- ``shared_card``: paid with the ring's one stolen card, from a throwaway account (so the
  card is used by several accounts);
- ``card_testing``: the device tries several distinct cards (declined) before one that works.

Honest sessions also plan their money (``PaymentPlan``, from a stream of its own so the other
decisions stay what they were): the payment method from their region's mix, a wallet top-up,
a 3-D Secure step-up confirmed or abandoned, a UPI payer's answer, and a return of some lines.
By default everyone pays by card; ``with_money`` turns the mix on.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from souk.seed import SeededCatalog, SeededProduct, zipf_weights
from souk.synthetic import SEARCH_TERMS
from transactional.shared.regions import REGION_CURRENCY, region_distance

Card = Literal["ok", "declined", "insufficient_funds"]
# How a session pays: a card, a card whose issuer asks for a 3-D Secure step-up, the wallet,
# wallet + card (split), card in instalments (EMI), UPI collect (India).
Method = Literal["card", "card_3ds", "wallet", "split", "emi", "upi"]
METHODS: tuple[Method, ...] = ("card", "card_3ds", "wallet", "split", "emi", "upi")
# payments.method as the server records each (a split is a wallet payment, gateway "split").
STORED_METHOD: dict[str, str] = {
    "card": "card",
    "card_3ds": "card",
    "wallet": "wallet",
    "split": "wallet",
    "emi": "emi",
    "upi": "upi",
}
TopUp = Literal["none", "at_checkout", "separate"]
StepUp = Literal["none", "confirm", "abandon"]
UpiAnswer = Literal["none", "approve", "decline", "timeout"]
# The payment-method mix per region (weights); UPI only where it exists (India).
DEFAULT_PAYMENT_MIX: dict[str, dict[str, float]] = {
    "eu": {"card": 0.55, "wallet": 0.10, "split": 0.10, "emi": 0.10, "card_3ds": 0.15},
    "us": {"card": 0.55, "wallet": 0.10, "split": 0.10, "emi": 0.10, "card_3ds": 0.15},
    "in": {"upi": 0.40, "card": 0.30, "emi": 0.15, "wallet": 0.15},
}
UPI_REGIONS = frozenset({"in"})
# Planned wallet top-ups, in major units of the shopper's currency (INR: a hundred times).
TOPUP_MAJOR = (20, 50, 100, 200)
Outcome = Literal["bounce", "abandon", "checkout"]
Edit = Literal["none", "bump", "remove"]
FRAUD_KINDS = ("burst", "far_shipping", "high_value", "foreign_ip", "shared_card", "card_testing")
FRAUD_KIND_SHARE = 0.4  # chance of each kind in a fraud session (at least one is drawn)

SHOPPER_COUNTRIES: dict[str, tuple[str, ...]] = {
    "eu": ("DE", "FR", "ES", "IT", "NL"),
    "us": ("US",),
    "in": ("IN",),
}
#: How many favourite categories a shopper has.
FAVOURITE_CATEGORIES = 2
#: Within its favourite categories a shopper looks past the bestsellers: product weights are
#: flattened to popularity**TASTE_FLATTENING (1 = as popular as anywhere, 0 = uniform).
TASTE_FLATTENING = 0.5
#: How unevenly shoppers come back: session owners are drawn with Zipf weights of this
#: exponent (0 = every account equally often), so a few regulars build long histories.
RETURNING_EXPONENT = 0.5
FIRST_NAMES = ("Ada", "Ravi", "Mia", "Jon", "Lea", "Sam", "Ana", "Kai", "Noor", "Tom", "Ivy")
LAST_NAMES = ("Lovelace", "Iyer", "Rossi", "Smith", "Weber", "Garcia", "Chen", "Khan", "Dubois")


def configured_ip_regions() -> dict[str, tuple[str, ...]]:
    """The IP ranges of each region the server maps client addresses with (SOUK_IP_REGIONS)."""
    from souk.settings import get_settings

    return {region: tuple(cidrs) for region, cidrs in get_settings().ip_regions.items()}


def configured_emi_terms() -> dict[str, dict[str, tuple[int, ...]]]:
    """Region -> bank -> the EMI terms (months) it offers, from the server's EMI table."""
    from transactional.payments.emi import current_emi_rates

    rates = current_emi_rates().rates
    return {
        region: {bank: tuple(sorted(terms)) for bank, terms in banks.items() if terms}
        for region, banks in rates.items()
    }


def default_payment_mix() -> dict[str, dict[str, float]]:
    """A copy of the default per-region payment-method mix."""
    return {region: dict(mix) for region, mix in DEFAULT_PAYMENT_MIX.items()}


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
    # Of a shopper's browsing views, the share within its favourite categories (each shopper
    # has FAVOURITE_CATEGORIES of them): tastes that recommenders can learn.
    taste_share: float = 0.85
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
    # Region -> payment method -> weight; a region without a mix pays by card (the default:
    # ``with_money`` gives DEFAULT_PAYMENT_MIX). Drawn from a stream of its own: the other
    # decisions stay what they were.
    payment_mix: Mapping[str, Mapping[str, float]] = field(default_factory=dict, hash=False)
    # Region -> bank -> EMI terms (the server's emi_rates.toml by default).
    emi_terms: Mapping[str, Mapping[str, tuple[int, ...]]] = field(
        default_factory=configured_emi_terms, hash=False
    )
    topup_step_share: float = 0.4  # wallet payers topping up as a step of its own, first
    abandon_step_up_share: float = 0.3  # 3-D Secure step-ups left to expire
    upi_decline_share: float = 0.15  # UPI payers declining the collect request
    upi_timeout_share: float = 0.1  # UPI payers never answering (the collect expires)
    return_share: float = 0.0  # paid orders delivered and (partly) returned
    damaged_share: float = 0.3  # returned lines found damaged on inspection
    # The number of the run's first session: a later visit of the same shoppers continues the
    # numbering, so its sessions are new plans (and new session ids and idempotency keys).
    first_session: int = 0
    event_batch: int = 20  # behaviour events per POST /v1/events
    timeout_s: float = 30.0  # per HTTP request
    # Region -> CIDRs: shoppers' home addresses are in their region's range (the server's
    # SOUK_IP_REGIONS by default, so that it maps them back to the region).
    ip_regions: Mapping[str, tuple[str, ...]] = field(
        default_factory=configured_ip_regions, hash=False
    )

    def __post_init__(self) -> None:
        if self.users < 1 or self.workers < 1 or self.event_batch < 1:
            raise ValueError("users, workers and event_batch must be at least 1")
        if self.first_session < 0:
            raise ValueError("first_session must not be negative")
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
        homeless = [r for r in self.regions if not self.ip_regions.get(r)]
        if homeless:
            raise ValueError(f"no IP range for {homeless} in ip_regions (SOUK_IP_REGIONS)")
        for cidrs in self.ip_regions.values():
            _networks(cidrs)  # ValueError for a malformed one
        if self.upi_decline_share + self.upi_timeout_share > 1:
            raise ValueError("upi_decline_share + upi_timeout_share must not exceed 1")
        for region, mix in self.payment_mix.items():
            unknown_methods = set(mix) - set(METHODS)
            if unknown_methods:
                raise ValueError(f"unknown payment methods {sorted(unknown_methods)} in {region}")
            if any(weight < 0 for weight in mix.values()) or (mix and not sum(mix.values())):
                raise ValueError(f"the payment mix of {region} needs positive weights")
            if mix.get("upi") and region not in UPI_REGIONS:
                raise ValueError(f"UPI is paid in {sorted(UPI_REGIONS)} only, not {region}")
            if mix.get("emi") and not self.emi_terms.get(region):
                raise ValueError(f"no EMI bank in {region} (emi_terms) for its EMI share")


MONEY_RETURN_SHARE = 0.25  # of paid orders, returned in a run with every payment method


def with_money(config: SimulationConfig) -> SimulationConfig:
    """``config`` paying with every method of each region's mix (DEFAULT_PAYMENT_MIX),
    topping up wallets, stepping up and returning a share of paid orders."""
    mix = default_payment_mix()
    return replace(
        config,
        payment_mix={region: mix.get(region, {"card": 1.0}) for region in config.regions},
        return_share=config.return_share or MONEY_RETURN_SHARE,
    )


@dataclass(frozen=True)
class ShopperProfile:
    """Who a simulated account is: home region, currency, country, and whether it is a fraudster."""

    index: int
    name: str
    region: str
    currency: str
    country: str
    fraudster: bool = False
    device: str = ""  # an opaque id of the shopper's one device
    home_ip: str = ""  # in the range of the shopper's region
    bad_card: Card = "declined"  # what the shopper's card that fails says


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
    # A recommendation widget when not empty: the plan's own picks; a live run shows the
    # list a recommendations endpoint serves instead, and clicks it at ``clicked``.
    recommended: tuple[str, ...]
    clicked: int | None  # position clicked in the widget
    lines: tuple[LinePlan, ...]
    edit: Edit
    outcome: Outcome
    orders: int  # checkouts in this session (a burst when > 1)
    card: Card
    retry_declined: bool
    replay: bool
    cancel: bool
    ship_region: str | None  # None: the account's saved home address
    # After a checkout succeeds, the same cart is checked out again from another tab (a new
    # Idempotency-Key): the lines are gone, so it must be refused, never sold twice.
    second_tab: bool = False
    client_ip: str | None = None  # where the session comes from (X-Forwarded-For)
    fresh_account: bool = False  # a throwaway account opened in the session
    stolen_card: bool = False  # pays with the ring's shared stolen card
    test_cards: int = 0  # distinct cards tried (declined) before the one that pays
    payment: Method = "card"
    topup: TopUp = "none"  # wallet payers top up first: a step of its own, or at checkout
    topup_minor: int = 0  # the planned top-up (more if the cart needs it)
    wallet_share: float = 0.0  # of a split payment, the wallet's share of the subtotal
    emi_bank: str | None = None
    emi_months: int | None = None
    step_up: StepUp = "none"  # a 3-D Secure card's challenge: confirmed or left to expire
    upi_answer: UpiAnswer = "none"
    return_lines: int = 0  # of a paid order, the lines returned once delivered (0: none)
    damaged_lines: int = 0  # of those, the ones found damaged on inspection

    @property
    def fraud(self) -> bool:
        """Whether this session is labelled fraud-like."""
        return bool(self.fraud_kinds)

    def paying(self, payment: PaymentPlan) -> SessionPlan:
        """This plan paying, topping up and returning as ``payment`` says."""
        return replace(self, **{f.name: getattr(payment, f.name) for f in fields(payment)})


@dataclass(frozen=True)
class PaymentPlan:
    """How a session pays and what follows: the money decisions of a SessionPlan."""

    payment: Method = "card"
    topup: TopUp = "none"
    topup_minor: int = 0
    wallet_share: float = 0.0
    emi_bank: str | None = None
    emi_months: int | None = None
    step_up: StepUp = "none"
    upi_answer: UpiAnswer = "none"
    return_lines: int = 0
    damaged_lines: int = 0


def far_regions(home: str, regions: Sequence[str]) -> list[str]:
    """The simulated regions farthest from ``home`` (where a fraudster ships an order)."""
    others = [r for r in regions if r != home] or [r for r in SHOPPER_COUNTRIES if r != home]
    farthest = max(region_distance(home, r) for r in others)
    return [r for r in others if region_distance(home, r) == farthest]


IpNetwork = IPv4Network | IPv6Network
_MAX_HOSTS = 2**31  # hosts drawn from per network (an IPv6 range is astronomically large)


def _networks(cidrs: Sequence[str]) -> list[IpNetwork]:
    return [ip_network(cidr, strict=False) for cidr in cidrs]


def _hosts(network: IpNetwork) -> tuple[int, int]:
    """(first offset, count) of the host addresses of a network (no network/broadcast)."""
    if network.num_addresses <= 2:
        return 0, network.num_addresses
    return 1, min(network.num_addresses - 2, _MAX_HOSTS)


def _host(networks: Sequence[IpNetwork], n: int) -> str:
    """The ``n``-th host address across ``networks``."""
    for network in networks:
        first, count = _hosts(network)
        if n < count:
            return str(network[first + n])
        n -= count
    raise IndexError(n)


def sample_hosts(cidrs: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct host addresses in ``cidrs``."""
    networks = _networks(cidrs)
    total = sum(_hosts(network)[1] for network in networks)
    if count > total:
        raise ValueError(f"{cidrs} hold {total} addresses, not {count}")
    return [_host(networks, n) for n in rng.sample(range(total), count)]


def random_host(cidrs: Sequence[str], rng: random.Random) -> str:
    """A host address in ``cidrs``."""
    return sample_hosts(cidrs, 1, rng)[0]


def _names_any(term: str, products: Sequence[SeededProduct]) -> bool:
    """Whether every word of ``term`` is a word of some product's title."""
    words = set(term.lower().split())
    return any(words <= set(product.title.lower().split()) for product in products)


def bad_card_of(index: int, config: SimulationConfig) -> Card:
    """The failing card of shopper ``index``: declined or short of funds, in the shares'
    proportion (spread evenly over the shoppers, so each has one failing card only)."""
    failing = config.declined_share + config.insufficient_funds_share
    short = config.insufficient_funds_share / failing if failing else 0.0
    return (
        "insufficient_funds"
        if math.floor((index + 1) * short) > math.floor(index * short)
        else "declined"
    )


class ShopperModel:
    """The pure decision model: profiles and per-session plans from the seed (no I/O)."""

    def __init__(self, catalog: SeededCatalog, config: SimulationConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.profiles = self._profiles()
        self._honest = [p.index for p in self.profiles if not p.fraudster]
        grouped: dict[str, list[SeededProduct]] = {}
        for product in catalog.products:
            grouped.setdefault(product.category_id, []).append(product)
        self._by_category = {
            category: (
                members,
                list(itertools.accumulate(p.weight**TASTE_FLATTENING for p in members)),
            )
            for category, members in grouped.items()
        }
        # The search terms that name products of each category (a search is run within the
        # category the shopper browses, so its words must fit it to find anything).
        self._terms = {
            category: tuple(term for term in SEARCH_TERMS if _names_any(term, members))
            for category, members in grouped.items()
        }
        # Which honest accounts come back most: a seeded order of Zipf weights.
        activity = zipf_weights(len(self._honest), RETURNING_EXPONENT)
        self._rng("activity").shuffle(activity)
        self._honest_activity = list(itertools.accumulate(activity))
        self._fraudsters = [p.index for p in self.profiles if p.fraudster]
        self._high_value = {
            currency: catalog.high_value(currency) for currency in REGION_CURRENCY.values()
        }
        # Where a fraudster appears to be abroad: the farthest regions that have addresses.
        self._foreign = {
            region: far_regions(region, others)
            if (others := [r for r in config.ip_regions if r != region])
            else []
            for region in config.regions
        }

    def favourite_categories(self, shopper: int) -> tuple[str, ...]:
        """The categories shopper ``shopper`` mostly browses (a function of the seed)."""
        categories = sorted(self._by_category)
        rng = self._rng("taste", shopper)
        return tuple(rng.sample(categories, min(FAVOURITE_CATEGORIES, len(categories))))

    def search_term(self, category: str, drawn: str) -> str:
        """The words a shopper searches ``category`` with: the drawn term mapped onto the
        terms that name its products (the drawn one when none does)."""
        terms = self._terms.get(category, ())
        if not terms:
            return drawn
        return terms[SEARCH_TERMS.index(drawn) % len(terms)] if drawn in SEARCH_TERMS else terms[0]

    def _browse(self, rng: random.Random, shopper: int) -> SeededProduct:
        """A product a shopper looks at: by popularity within its tastes, or anywhere."""
        if rng.random() >= self.config.taste_share:
            return self.catalog.pick(rng)
        products, cumulative = self._by_category[rng.choice(self.favourite_categories(shopper))]
        return rng.choices(products, cum_weights=cumulative)[0]

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
        return self._equipped(profiles)

    def _equipped(self, profiles: list[ShopperProfile]) -> list[ShopperProfile]:
        """Each profile with its device, its own home address and its failing card (drawn
        from streams of their own: the profiles' other draws stay what they were)."""
        rng = self._rng("devices")
        devices = [f"{rng.getrandbits(64):016x}" for _ in profiles]
        homes: dict[int, str] = {}
        for region in sorted({p.region for p in profiles}):
            members = [p.index for p in profiles if p.region == region]
            hosts = sample_hosts(
                self.config.ip_regions[region], len(members), self._rng("homes", region)
            )
            homes.update(zip(members, hosts, strict=True))
        return [
            replace(
                profile,
                device=devices[profile.index],
                home_ip=homes[profile.index],
                bad_card=bad_card_of(profile.index, self.config),
            )
            for profile in profiles
        ]

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
        if self._honest:
            shopper = rng.choices(self._honest, cum_weights=self._honest_activity)[0]
        else:
            shopper = rng.choice(self._fraudsters)
        return self._honest_session(index, rng, shopper)

    def _honest_session(self, index: int, rng: random.Random, shopper: int) -> SessionPlan:
        config = self.config
        guest = rng.random() < config.guest_share
        query = category = None
        views: list[ViewPlan] = []
        if rng.random() < config.search_share:
            drawn = rng.choice(SEARCH_TERMS)
            category = self._browse(rng, shopper).category_id  # searches follow tastes too
            # Mapped, not drawn again: every other decision keeps its draws.
            query = self.search_term(category, drawn)
            in_category = [p for p in self.catalog.products if p.category_id == category]
            for position in range(min(len(in_category), rng.randint(0, 2))):
                product = in_category[position]
                views.append(
                    ViewPlan(product.product_id, rng.choice(product.skus).sku, "search", position)
                )
        for _ in range(rng.randint(1, 5)):
            product = self._browse(rng, shopper)
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
        profile = self.profiles[shopper]
        draw = rng.random()
        # One failing card per shopper: a shopper never tries more than its two cards.
        failing = draw < config.declined_share + config.insufficient_funds_share
        card: Card = profile.bad_card if failing else "ok"
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
            replay=(replay := rng.random() < config.replay_share),
            cancel=rng.random() < config.cancel_share,
            ship_region=None,
            # Half the replaying shoppers also use a second tab (no draw: the seed's other
            # choices stay what they were).
            second_tab=replay and index % 2 == 0,
            client_ip=profile.home_ip,  # always from home, on the shopper's one device
        ).paying(self.payment_plan(index, profile))

    def payment_plan(self, index: int, profile: ShopperProfile) -> PaymentPlan:
        """How session ``index`` of ``profile`` pays, tops up, steps up and returns: drawn
        from a stream of its own (the session's other draws stay what they were)."""
        config = self.config
        rng = self._rng("payment", index)
        mix = {m: w for m, w in config.payment_mix.get(profile.region, {}).items() if w > 0}
        method: Method = "card"
        if mix:
            method = rng.choices(list(mix), weights=list(mix.values()))[0]  # type: ignore[assignment]
        plan = PaymentPlan(payment=method)
        if method in ("wallet", "split"):
            separate = rng.random() < config.topup_step_share
            unit = 10_000 if profile.currency == "INR" else 100
            plan = replace(
                plan,
                topup="separate" if separate else "at_checkout",
                topup_minor=rng.choice(TOPUP_MAJOR) * unit,
                wallet_share=rng.choice((0.25, 0.5, 0.75)) if method == "split" else 0.0,
            )
        elif method == "emi":
            banks = config.emi_terms.get(profile.region, {})
            bank = rng.choice(sorted(banks))
            plan = replace(plan, emi_bank=bank, emi_months=rng.choice(banks[bank]))
        elif method == "card_3ds":
            abandon = rng.random() < config.abandon_step_up_share
            plan = replace(plan, step_up="abandon" if abandon else "confirm")
        elif method == "upi":
            draw = rng.random()
            answer: UpiAnswer = "approve"
            if draw < config.upi_decline_share:
                answer = "decline"
            elif draw < config.upi_decline_share + config.upi_timeout_share:
                answer = "timeout"
            plan = replace(plan, upi_answer=answer)
        if rng.random() < config.return_share:
            returned = rng.randint(1, 2)
            damaged = sum(rng.random() < config.damaged_share for _ in range(returned))
            plan = replace(plan, return_lines=returned, damaged_lines=damaged)
        return plan

    def _fraud_session(self, index: int, rng: random.Random, shopper: int) -> SessionPlan:
        profile = self.profiles[shopper]
        foreign = self._foreign[profile.region]
        possible = [kind for kind in FRAUD_KINDS if kind != "foreign_ip" or foreign]
        kinds = tuple(kind for kind in possible if rng.random() < FRAUD_KIND_SHARE) or (
            rng.choice(possible),
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
        card: Card = "declined" if rng.random() < 0.15 else "ok"
        client_ip = profile.home_ip
        if "foreign_ip" in kinds:
            client_ip = random_host(self.config.ip_regions[rng.choice(foreign)], rng)
        test_cards = rng.randint(3, 5) if "card_testing" in kinds else 0
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
            card="ok" if test_cards else card,
            retry_declined=True,
            replay=False,
            cancel=False,
            ship_region=ship_region,
            client_ip=client_ip,
            fresh_account="high_value" in kinds or "shared_card" in kinds,
            stolen_card="shared_card" in kinds,
            test_cards=test_cards,
        )
