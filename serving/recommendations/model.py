"""The recommendations domain: what a served list is, how lists are filtered and re-ranked.

Pure Python and numpy: no framework, no driver. Services feed it candidates from the models
and the read models; it decides what may be shown (listed, in stock, not already bought) and
in which order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from transactional.shared.errors import Forbidden, InvalidRequest, Unauthorized

#: Longest list one request may ask for (a widget, a feed page).
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
#: Candidates fetched per wanted item, so filtering (stock, status) still fills the list.
OVERFETCH = 3
#: The model version a response carries when no promoted model answered it.
FALLBACK = "fallback"
#: The role of another service calling on a customer's behalf (besides admins).
SERVICE_ROLE = "service"  # transactional.shared.auth.SERVICE (kept free of the JWT driver)

#: Models of trending lists: the streaming read model, the batch daily baseline.
TRENDING_STREAM, TRENDING_DAILY = "trending_stream", "trending_daily"

SignalKind = Literal["view", "cart", "purchase"]
#: A stronger signal says more about taste (the gold interactions' weights).
SIGNAL_WEIGHTS: Mapping[str, float] = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
#: Each older signal counts this much less than the one after it.
RECENCY_DECAY = 0.9


@dataclass(frozen=True)
class ProductInfo:
    """What filtering needs of a product: its status, category, title and SKUs."""

    product_id: str
    status: str
    category_id: str
    title: str
    skus: tuple[str, ...] = ()

    @property
    def listed(self) -> bool:
        """Only active products may be shown (drafts and archived ones are unlisted)."""
        return self.status == "active"


@dataclass(frozen=True)
class Scored:
    """A candidate product and its model score."""

    product_id: str
    score: float


@dataclass(frozen=True)
class Signal:
    """One recent behaviour signal of a customer (newest first in lists)."""

    kind: str
    product_id: str


@dataclass(frozen=True)
class Pick:
    """One recommended product as served."""

    product_id: str
    score: float
    title: str
    category_id: str


@dataclass(frozen=True)
class Recommendations:
    """A served list: its id (echoed in clicks), where it is shown, which model made it."""

    recommendation_id: str
    placement: str
    model: str
    model_version: str
    items: list[Pick]
    context_product_id: str | None = None
    scope: str | None = None  # trending lists: the read model's scope they came from

    @property
    def fallback(self) -> bool:
        """True when no promoted model answered (popularity or trending stood in)."""
        return self.model_version == FALLBACK


@dataclass(frozen=True)
class Ranked:
    """Candidates from one source before filtering, with the model that produced them."""

    model: str
    version: str
    candidates: list[Scored] = field(default_factory=list)
    scope: str | None = None


@dataclass(frozen=True)
class ClickThrough:
    """Served lists and lists clicked at least once, for one model version."""

    model: str
    model_version: str
    served: int
    clicked: int

    @property
    def rate(self) -> float:
        """Clicked lists / served lists (0 when nothing was served)."""
        return self.clicked / self.served if self.served else 0.0


def new_recommendation_id() -> str:
    """A fresh recommendation id (``rec_`` + 24 hex), echoed by clients in clicks."""
    return f"rec_{secrets.token_hex(12)}"


def check_limit(limit: int) -> int:
    """1..MAX_LIMIT items, else InvalidRequest (the HTTP edge checks too)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit}",
            code="invalid_limit",
            max=MAX_LIMIT,
        )
    return limit


def check_region(region: str | None, regions: Iterable[str], default: str) -> str:
    """A served region (lowercase), the default when None; InvalidRequest otherwise."""
    if region is None:
        return default
    known = list(regions)
    if region.lower() not in known:
        raise InvalidRequest(
            f"unknown region {region!r}; served regions: {', '.join(known)}",
            code="unknown_region",
            regions=known,
        )
    return region.lower()


def target_customer(
    caller_id: str | None, caller_roles: frozenset[str], customer_id: str | None
) -> str:
    """Whose recommendations: the signed-in customer, or ``customer_id`` for admins/services."""
    if caller_id is None:
        raise Unauthorized(
            "sign in first: send `Authorization: Bearer <token>` from POST /v1/auth/token",
            code="missing_token",
        )
    if customer_id is None or customer_id == caller_id:
        return caller_id
    if caller_roles & {"admin", SERVICE_ROLE}:
        return customer_id
    raise Forbidden("customer_id is for admin or service tokens; leave it out for your own")


def merge(*lists: Sequence[Scored]) -> list[Scored]:
    """Candidates of several lists in order, each product once (its first occurrence)."""
    seen: set[str] = set()
    merged: list[Scored] = []
    for candidates in lists:
        for candidate in candidates:
            if candidate.product_id not in seen:
                seen.add(candidate.product_id)
                merged.append(candidate)
    return merged


def servable(
    candidates: Sequence[Scored],
    products: Mapping[str, ProductInfo],
    in_stock: Callable[[ProductInfo], bool],
    exclude: Iterable[str],
    limit: int,
) -> list[Pick]:
    """The first ``limit`` candidates that are listed, in stock and not excluded."""
    skip = set(exclude)
    picks: list[Pick] = []
    for candidate in candidates:
        info = products.get(candidate.product_id)
        if info is None or candidate.product_id in skip or not info.listed or not in_stock(info):
            continue
        skip.add(candidate.product_id)
        picks.append(Pick(info.product_id, candidate.score, info.title, info.category_id))
        if len(picks) == limit:
            break
    return picks


def user_vector(
    signals: Sequence[Signal], vector_of: Callable[[str], npt.NDArray[np.float32] | None]
) -> npt.NDArray[np.float32] | None:
    """A unit taste vector: recent items' vectors weighted by signal and recency (None if none).

    ``signals`` are newest first; a purchase weighs 5 views, and each older signal
    ``RECENCY_DECAY`` times the newer one.
    """
    total: npt.NDArray[np.float32] | None = None
    weight = 1.0
    for signal in signals:
        vector = vector_of(signal.product_id)
        if vector is not None:
            part = vector * np.float32(weight * SIGNAL_WEIGHTS.get(signal.kind, 1.0))
            total = part if total is None else total + part
        weight *= RECENCY_DECAY
    if total is None:
        return None
    norm = float(np.linalg.norm(total))
    return None if norm <= 1e-12 else (total / norm).astype(np.float32)


def blend(
    scores: Sequence[float], affinities: Sequence[float | None], weight: float
) -> list[float]:
    """Scores re-ranked by affinity: ``(1-w)·minmax(score) + w·(cos+1)/2``, in [0, 1].

    A candidate without an affinity (no vector) gets the neutral 0.5 for it, so personal
    matches rise above it and mismatches fall below.
    """
    if len(scores) != len(affinities):
        raise ValueError(f"{len(scores)} scores but {len(affinities)} affinities")
    if not scores:
        return []
    base = np.asarray(scores, dtype=np.float64)
    low, high = float(base.min()), float(base.max())
    normal = (base - low) / (high - low) if high > low else np.ones_like(base)
    personal = np.array([0.5 if a is None else (a + 1.0) / 2.0 for a in affinities])
    return [float(v) for v in (1.0 - weight) * normal + weight * personal]


def favourite_categories(
    signals: Sequence[Signal], products: Mapping[str, ProductInfo], n: int = 2
) -> list[str]:
    """The ``n`` categories a customer's recent signals weigh most in."""
    weights: dict[str, float] = {}
    for signal in signals:
        info = products.get(signal.product_id)
        if info is not None:
            weights[info.category_id] = weights.get(info.category_id, 0.0) + SIGNAL_WEIGHTS.get(
                signal.kind, 1.0
            )
    return sorted(weights, key=lambda c: (-weights[c], c))[:n]


def trending_scopes(category: str | None, region: str | None) -> list[str]:
    """Streaming trending scopes to try, narrowest first (names as in pipelines/trending.py)."""
    if category and region:
        return [f"region:{region}:category:{category}", f"category:{category}"]
    if category:
        return [f"category:{category}"]
    if region:
        return [f"region:{region}", "all"]
    return ["all"]
