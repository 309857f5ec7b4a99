"""The autosuggest service: in-memory indexes per region, kept current from the count store.

Reads never wait on I/O: they use the current ``State`` (immutable, swapped atomically). A
request finding the state older than ``refresh_s`` starts one background refresh, which reads
the store's change log (queries and titles changed since) into small overlay indexes; when
the overlays grow, or the base is old, the base is rebuilt from the catalog and the counts.
Any number of serving processes do the same from the one store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from serving.suggest.model import (
    MAX_SUGGESTIONS,
    Phrase,
    PrefixIndex,
    Sources,
    Suggestion,
    Vocabulary,
    decay_factor,
    normalize,
    product_weight,
    suggest,
)
from serving.suggest.ports import CatalogTitles, Changes, CountStore
from transactional.shared.errors import InvalidRequest

_LOG = logging.getLogger("souk.suggest")


@dataclass(frozen=True)
class SuggestConfig:
    """Tuning of the service (from ``souk.settings``)."""

    regions: Sequence[str]
    default_region: str
    half_life_days: float = 14.0
    product_base_weight: float = 1.0
    max_queries: int = 50_000
    refresh_s: float = 1.0
    rebuild_s: float = 600.0
    overlay_max: int = 5_000


@dataclass
class _Data:
    """The raw inputs of the indexes (kept to rebuild overlays without reloading)."""

    titles: dict[str, str] = field(default_factory=dict)
    views: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, float]] = field(default_factory=dict)
    overlay_titles: dict[str, str | None] = field(default_factory=dict)
    overlay_counts: dict[str, dict[str, float]] = field(default_factory=dict)

    def overlay_size(self) -> int:
        return len(self.overlay_titles) + sum(len(c) for c in self.overlay_counts.values())


@dataclass(frozen=True)
class State:
    """Everything a request reads, built off the request path and swapped whole."""

    seq: int
    built_at: float
    refreshed_at: float
    sources: Mapping[str, Sources]
    data: _Data
    base: tuple[PrefixIndex, Vocabulary, Mapping[str, tuple[PrefixIndex, Vocabulary]]]


class SuggestService:
    """Prefix completion per region from past queries and product titles."""

    def __init__(
        self,
        store: CountStore,
        catalog: CatalogTitles,
        config: SuggestConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        self._state: State | None = None
        self._build_lock = threading.Lock()
        self._refreshing = threading.Lock()

    # -- reads -----------------------------------------------------------------------------

    def suggest(
        self, query: str, region: str | None = None, limit: int = MAX_SUGGESTIONS
    ) -> list[Suggestion]:
        """Up to ``limit`` (≤ 10) suggestions for what the user typed so far."""
        region = (region or self.config.default_region).lower()
        if region not in self.config.regions:
            raise InvalidRequest(
                f"unknown region {region!r}; one of: {', '.join(self.config.regions)}",
                code="unknown_region",
                region=region,
            )
        if not 1 <= limit <= MAX_SUGGESTIONS:
            raise InvalidRequest(f"limit must be 1..{MAX_SUGGESTIONS}", code="invalid_limit")
        state = self._ready()
        self._maybe_refresh(state)
        return suggest(state.sources[region], query, limit)

    def warm(self) -> None:
        """Build the indexes now (start-up), instead of on the first request."""
        self._ready()

    def refresh(self) -> None:
        """Apply what changed in the store since the last refresh (or rebuild); blocking."""
        with self._refreshing:
            self._refresh()

    @property
    def state(self) -> State:
        """The current state (built if needed)."""
        return self._ready()

    # -- building --------------------------------------------------------------------------

    def _ready(self) -> State:
        state = self._state
        if state is not None:
            return state
        with self._build_lock:
            if self._state is None:
                self._state = self._rebuild()
            return self._state

    def _maybe_refresh(self, state: State) -> None:
        if self._monotonic() - state.refreshed_at < self.config.refresh_s:
            return
        if not self._refreshing.acquire(blocking=False):
            return  # one refresh at a time; this request uses the current state

        def run() -> None:
            try:
                self._refresh()
            except Exception:
                _LOG.warning("autosuggest refresh failed; serving the last state", exc_info=True)
                current = self._state
                if current is not None:  # retry after another interval, not on every request
                    self._state = _touched(current, self._monotonic())
            finally:
                self._refreshing.release()

        threading.Thread(target=run, name="souk-suggest-refresh", daemon=True).start()

    def _refresh(self) -> None:
        state = self._ready()
        data = state.data
        seq = state.seq
        changed = False
        while True:
            changes = self._store.changes_since(seq, 10_000)
            if not changes.complete:
                self._state = self._rebuild()
                return
            scale = decay_factor(self._clock(), self.config.half_life_days)
            changed |= _merge(data, changes, scale)
            seq = changes.seq
            if not changes.more:
                break
        now = self._monotonic()
        old = now - state.built_at >= self.config.rebuild_s
        if data.overlay_size() > self.config.overlay_max or (old and changed):
            self._state = self._rebuild()
        elif changed:
            self._state = self._assemble(seq, state.built_at, data, state.base)
        else:
            self._state = _touched(state, now, seq)

    def _rebuild(self) -> State:
        """Everything from the catalog and the store: the base indexes, empty overlays."""
        started = self._monotonic()
        seq = self._store.seq()  # first: changes after it are applied by the next refresh
        now = self._clock()
        scale = decay_factor(now, self.config.half_life_days)
        data = _Data(
            titles=dict(self._catalog.active_titles()),
            views={p: v / scale for p, v in self._store.views().items()},
            counts={
                region: {
                    q: c / scale
                    for q, c in self._store.queries(region, self.config.max_queries).items()
                }
                for region in self.config.regions
            },
        )
        products = PrefixIndex(self._product_phrases(data.titles, data.views))
        product_words = Vocabulary.of(products.phrases)
        per_region = {}
        for region in self.config.regions:
            queries = PrefixIndex(_query_phrases(data.counts.get(region, {})))
            per_region[region] = (queries, product_words.merged(Vocabulary.of(queries.phrases)))
        state = self._assemble(seq, self._monotonic(), data, (products, product_words, per_region))
        _LOG.info(
            "autosuggest built: %d titles, %d queries in %.2f s",
            len(products),
            sum(len(q) for q, _ in per_region.values()),
            self._monotonic() - started,
        )
        return state

    def _assemble(
        self,
        seq: int,
        built_at: float,
        data: _Data,
        base: tuple[PrefixIndex, Vocabulary, Mapping[str, tuple[PrefixIndex, Vocabulary]]],
    ) -> State:
        """The state of base indexes plus overlays built from ``data``'s changes."""
        products, _, per_region = base
        listed = {p: t for p, t in data.overlay_titles.items() if t is not None}
        product_overlay = PrefixIndex(self._product_phrases(listed, data.views))
        hidden_products = frozenset(data.overlay_titles)
        overlay_words = Vocabulary.of(product_overlay.phrases)
        sources: dict[str, Sources] = {}
        for region in self.config.regions:
            queries, words = per_region[region]
            counts = data.overlay_counts.get(region, {})
            query_overlay = PrefixIndex(_query_phrases(counts))
            vocabulary = words.merged(overlay_words).merged(Vocabulary.of(query_overlay.phrases))
            sources[region] = Sources(
                indexes=(products, product_overlay, queries, query_overlay),
                vocabulary=vocabulary,
                hidden={0: hidden_products, 2: frozenset(counts)},
            )
        return State(seq, built_at, self._monotonic(), sources, data, base)

    def _product_phrases(
        self, titles: Mapping[str, str], views: Mapping[str, float]
    ) -> list[Phrase]:
        # One phrase per distinct title: the best-viewed product of that title carries it.
        best: dict[str, Phrase] = {}
        for product_id, title in titles.items():
            text = normalize(title)
            if not text:
                continue
            weight = product_weight(views.get(product_id, 0.0), self.config.product_base_weight)
            held = best.get(text)
            if held is None or weight > held.weight:
                best[text] = Phrase(text, title.strip(), weight, "product", product_id)
        return list(best.values())


def _query_phrases(counts: Mapping[str, float]) -> list[Phrase]:
    return [Phrase(text, text, weight, "query") for text, weight in counts.items() if weight > 0]


def _merge(data: _Data, changes: Changes, scale: float) -> bool:
    """Fold a change-log read (stored, undecayed scores) into the overlays' inputs; whether
    anything changed."""
    changed = False
    for region, counts in changes.queries.items():
        if counts:
            data.overlay_counts.setdefault(region, {}).update(
                {text: count / scale for text, count in counts.items()}
            )
            changed = True
    for product_id, title in changes.products.items():
        data.overlay_titles[product_id] = title.title
        changed = True
    for product_id, views in changes.views.items():
        data.views[product_id] = views / scale
    return changed


def _touched(state: State, now: float, seq: int | None = None) -> State:
    return State(
        state.seq if seq is None else seq,
        state.built_at,
        now,
        state.sources,
        state.data,
        state.base,
    )
