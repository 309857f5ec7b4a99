"""Adapters of the recommendations ports: PostgreSQL, Redis, the lake and the outbox.

Redis keys written here (all under ``souk:rec:``):

- ``souk:rec:list:<kind>:<version>:<product_id>``: a raw candidate list (JSON), per model
  version, so a promotion never serves another version's cached list;
- ``souk:rec:served:<recommendation_id>``: ``<model>|<version>`` of a served list (clicks are
  attributed to it); the consumer in ``activity.py`` keeps the rest (recent signals, counts).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine, text

from schemas.registry import REGISTRY
from serving.recommendations.model import (
    ClickThrough,
    ProductInfo,
    Recommendations,
    Scored,
    Signal,
)
from transactional.inventory.counters import counter_key
from transactional.shared.errors import StoreUnavailable
from transactional.shared.outbox import Outbox
from transactional.shared.unit_of_work import SqlUnitOfWork

K = TypeVar("K")
V = TypeVar("V")

LIST_KEY = "souk:rec:list:{kind}:{version}:{product_id}"
SERVED_KEY = "souk:rec:served:{recommendation_id}"
RECENT_KEY = "souk:rec:recent:{customer_id}"
COUNTS_KEY = "souk:rec:ctr"  # hash: served|<model>|<version>, clicked|<model>|<version>
SIGNAL_CODES = {"view": "v", "cart": "c", "purchase": "p"}
SIGNAL_KINDS = {code: kind for kind, code in SIGNAL_CODES.items()}


def recent_key(customer_id: str) -> str:
    """The Redis list of a customer's recent signals (``<code>:<product_id>``, newest first)."""
    return RECENT_KEY.format(customer_id=customer_id)


def served_key(recommendation_id: str) -> str:
    """Where a served list's ``<model>|<version>`` is kept for click attribution."""
    return SERVED_KEY.format(recommendation_id=recommendation_id)


def redis_call(operation: Callable[[], V]) -> V:
    """Run a Redis operation; an unreachable Redis is StoreUnavailable (503), not a 500."""
    try:
        return operation()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TtlCache(Generic[K, V]):
    """A small in-process cache with a time to live per entry (thread-safe, bounded)."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[K]) -> tuple[dict[K, V], list[K]]:
        """(fresh hits, missing keys)."""
        now = self._clock()
        hits: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                hits[key] = entry[1]
            else:
                missing.append(key)
        return hits, missing

    def put_many(self, values: dict[K, V]) -> None:
        """Store values until now + ttl (the whole cache is dropped when it grows too big)."""
        if self._ttl <= 0:
            return
        expires = self._clock() + self._ttl
        with self._lock:
            if len(self._entries) + len(values) > self._max:
                self._entries.clear()
            for key, value in values.items():
                self._entries[key] = (expires, value)


_DESCRIBE = """
SELECT p.product_id, p.status, p.category_id, p.title,
       coalesce(array_agg(v.sku ORDER BY v.position) FILTER (WHERE v.sku IS NOT NULL), '{}')
           AS skus
FROM products p LEFT JOIN product_variants v ON v.product_id = p.product_id
WHERE p.product_id = ANY(:ids)
GROUP BY p.product_id
"""


class SqlCatalog:
    """Catalog port over the catalog's tables, cached in-process for ``ttl_s`` seconds."""

    def __init__(self, engine: Engine, *, ttl_s: float) -> None:
        self._engine = engine
        self._cache: TtlCache[str, ProductInfo | None] = TtlCache(ttl_s)

    def describe(self, product_ids: Sequence[str]) -> dict[str, ProductInfo]:
        """The known products among ``product_ids`` (unknown ones are absent)."""
        hits, missing = self._cache.get_many(list(dict.fromkeys(product_ids)))
        if missing:
            with self._engine.connect() as connection:
                rows = connection.execute(text(_DESCRIBE), {"ids": missing}).mappings().all()
            found: dict[str, ProductInfo | None] = dict.fromkeys(missing)
            for row in rows:
                found[row["product_id"]] = ProductInfo(
                    product_id=row["product_id"],
                    status=row["status"],
                    category_id=row["category_id"],
                    title=row["title"],
                    skus=tuple(row["skus"]),
                )
            self._cache.put_many(found)  # unknown ids too: a miss costs a query each time
            hits.update(found)
        return {pid: info for pid, info in hits.items() if info is not None}


class RedisStock:
    """Stock port: the inventory's live Redis counters, PostgreSQL where a counter is missing.

    The counters (``{inv}:avail:<warehouse>:<sku>``) are what the checkout's gate takes
    units from, so they are the freshest view; they are primed lazily, so SKUs without any
    counter are summed from ``stock_levels`` (on hand minus reserved), cached briefly.
    """

    def __init__(
        self,
        client: redis.Redis,
        engine: Engine,
        *,
        ttl_s: float = 5.0,
        warehouses_ttl_s: float = 60,
    ) -> None:
        self._client = client
        self._engine = engine
        self._db_cache: TtlCache[str, int] = TtlCache(ttl_s)
        self._warehouses: tuple[float, list[str]] = (float("-inf"), [])
        self._warehouses_ttl = warehouses_ttl_s

    def warehouses(self) -> list[str]:
        """Every warehouse id (cached: reference data)."""
        expires, ids = self._warehouses
        if time.monotonic() < expires:
            return ids
        with self._engine.connect() as connection:
            ids = list(
                connection.execute(text("SELECT warehouse_id FROM warehouses ORDER BY 1")).scalars()
            )
        self._warehouses = (time.monotonic() + self._warehouses_ttl, ids)
        return ids

    def in_stock(self, skus: Sequence[str]) -> set[str]:
        """The SKUs among ``skus`` with at least one available unit in any warehouse."""
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return set()
        warehouses = self.warehouses()
        keys = [counter_key((sku, wh)) for sku in wanted for wh in warehouses]
        values = cast(list[Any], redis_call(lambda: self._client.mget(keys))) if keys else []
        available: set[str] = set()
        unknown: list[str] = []
        width = len(warehouses)
        for i, sku in enumerate(wanted):
            counters = values[i * width : (i + 1) * width]
            known = [int(v) for v in counters if v is not None]
            if any(v > 0 for v in known):
                available.add(sku)
            elif len(known) < width:  # some warehouse not primed: PostgreSQL decides
                unknown.append(sku)
        if unknown:
            available.update(sku for sku, units in self._from_db(unknown).items() if units > 0)
        return available

    def _from_db(self, skus: list[str]) -> dict[str, int]:
        hits, missing = self._db_cache.get_many(skus)
        if missing:
            with self._engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT sku, sum(on_hand - reserved) AS units FROM stock_levels "
                        "WHERE sku = ANY(:skus) GROUP BY sku"
                    ),
                    {"skus": missing},
                ).all()
            found = dict.fromkeys(missing, 0)
            found.update({str(row.sku): int(row.units) for row in rows})
            self._db_cache.put_many(found)
            hits.update(found)
        return hits


class SqlPurchases:
    """Purchases port: the products of a customer's orders that were not cancelled."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def bought(self, customer_id: str) -> set[str]:
        """Product ids of the customer's orders that were not cancelled."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT DISTINCT l.product_id FROM orders o JOIN order_lines l "
                    "ON l.region = o.region AND l.order_id = o.order_id "
                    "WHERE o.customer_id = :customer AND o.status <> 'cancelled'"
                ),
                {"customer": customer_id},
            ).scalars()
            return {str(product_id) for product_id in rows}


class RedisTrending:
    """Trending port over the streaming job's read model (``pipelines/trending.py``)."""

    def __init__(self, client: redis.Redis) -> None:
        # The job module imports PyFlink: load it once, when serving is wired, not per call.
        from pipelines import trending

        self._client = client
        self._job = trending

    def top(self, scope: str, n: int) -> tuple[list[Scored], str | None]:
        """The newest window's top ``n`` of ``scope`` and that window's end as its version."""

        def read() -> tuple[list[Scored], str | None]:
            end = self._job.latest_window(self._client, scope)
            if end is None:
                return [], None
            ranked = self._job.window_top(self._client, scope, end, n)
            moment = datetime.fromtimestamp(end / 1000, UTC)
            return [Scored(p, float(s)) for p, s in ranked], f"window-{moment:%Y%m%dT%H%M%SZ}"

        return redis_call(read)


class LakeTrendingBaseline:
    """TrendingBaseline port over ``gold/trending_daily``, re-read at most every ``ttl_s``."""

    TABLE = "gold/trending_daily"

    def __init__(self, read_table: Callable[[str], Any], *, ttl_s: float = 300.0) -> None:
        self._read = read_table
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._loaded: tuple[float, dict[str | None, tuple[list[Scored], str]]] = (
            float("-inf"),
            {},
        )

    def top(self, region: str | None, n: int) -> tuple[list[Scored], str | None]:
        """The newest day's top ``n`` in ``region`` (None: summed over regions) and the day."""
        found = self._tables().get(region)
        if found is None:
            return [], None
        return found[0][:n], found[1]

    def _tables(self) -> dict[str | None, tuple[list[Scored], str]]:
        expires, tables = self._loaded
        if time.monotonic() < expires:
            return tables
        with self._lock:
            tables = self._load()
            self._loaded = (time.monotonic() + self._ttl, tables)
        return tables

    def _load(self) -> dict[str | None, tuple[list[Scored], str]]:
        try:
            frame = self._read(self.TABLE)
        except Exception:  # no lake or no table yet: the baseline is simply empty
            return {}
        if frame is None or len(frame) == 0:
            return {}
        newest = frame["day"].max()
        day = frame[frame["day"] == newest]
        label = f"day-{str(newest)[:10]}"
        tables: dict[str | None, tuple[list[Scored], str]] = {}
        for region, rows in day.groupby("region"):
            ordered = rows.sort_values(["rank", "product_id"])
            tables[str(region)] = (_scored(ordered), label)
        summed = day.groupby("product_id")["score"].sum().reset_index()
        summed = summed.sort_values(["score", "product_id"], ascending=[False, True])
        tables[None] = (_scored(summed), label)
        return tables


def _scored(frame: Any) -> list[Scored]:
    pairs = zip(frame["product_id"], frame["score"], strict=True)
    return [Scored(str(product), float(score)) for product, score in pairs]


def lake_reader(settings: Any) -> Callable[[str], Any]:
    """Read a lake table as pandas (delta-rs), for the baseline."""

    def read(table: str) -> Any:
        from jobs.lake import table_store

        store = table_store(settings)
        if not store.exists(table):
            return None
        return store.read(table).to_pandas()

    return read


class RedisActivity:
    """Activity port: the recent-signal lists the activity consumer keeps."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def recent(self, customer_id: str, n: int) -> list[Signal]:
        """The customer's last ``n`` signals, newest first."""
        raw = cast(
            list[Any], redis_call(lambda: self._client.lrange(recent_key(customer_id), 0, n - 1))
        )
        signals = []
        for entry in raw:
            code, _, product_id = _text(entry).partition(":")
            if product_id and code in SIGNAL_KINDS:
                signals.append(Signal(SIGNAL_KINDS[code], product_id))
        return signals


class OutboxServedLog:
    """ServedLog port: ``recommendation.served`` through the outbox, as the tracking
    collector publishes storefront events, and the list's model version in Redis for clicks.
    """

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        client: redis.Redis,
        *,
        served_ttl_s: int,
        channel: str = "web",
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._client = client
        self._ttl = served_ttl_s
        self._channel = channel

    def served(
        self,
        recommendations: Recommendations,
        *,
        session_id: str,
        customer_id: str | None,
        region: str,
    ) -> None:
        """Write the event (one transaction) and the attribution key."""
        envelope = REGISTRY.new_event(
            "recommendation.served",
            {
                "recommendation_id": recommendations.recommendation_id,
                "session_id": session_id,
                "customer_id": customer_id,
                "placement": recommendations.placement,
                "model": recommendations.model,
                "model_version": recommendations.model_version,
                "product_ids": [pick.product_id for pick in recommendations.items],
                "context_product_id": recommendations.context_product_id,
                "channel": self._channel,
            },
            region=region,
        )
        # Attribution first: a click can only follow a list the client has received.
        redis_call(
            lambda: self._client.set(
                served_key(recommendations.recommendation_id),
                f"{recommendations.model}|{recommendations.model_version}",
                ex=self._ttl,
            )
        )
        with SqlUnitOfWork(self._engine, self._outbox) as uow:
            uow.emit(envelope)
            uow.commit()


class RedisListCache:
    """ListCache port: JSON lists in Redis with a TTL."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self._client = client
        self._ttl = ttl_s

    def get(self, key: str) -> list[Scored] | None:
        """The cached list, None on a miss (or when Redis does not answer)."""
        try:
            raw = self._client.get(key)
        except (RedisConnectionError, RedisTimeoutError):
            return None  # a cache: recompute rather than fail
        if raw is None:
            return None
        return [Scored(str(p), float(s)) for p, s in json.loads(cast(bytes, raw))]

    def put(self, key: str, candidates: Sequence[Scored]) -> None:
        """Cache a list for the TTL (best effort)."""
        value = json.dumps([[c.product_id, round(c.score, 6)] for c in candidates])
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            self._client.set(key, value, ex=self._ttl)


def list_key(kind: str, version: str, product_id: str) -> str:
    """The cache key of one product's raw list under one model version."""
    return LIST_KEY.format(kind=kind, version=version, product_id=product_id)


class RedisClickStats:
    """ClickStats port over the counters hash the activity consumer keeps."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def click_through(self) -> list[ClickThrough]:
        """Every model version seen, with served and clicked list counts."""
        raw = cast(dict[Any, Any], redis_call(lambda: self._client.hgetall(COUNTS_KEY)))
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for field_, value in raw.items():
            what, _, rest = _text(field_).partition("|")
            model, _, version = rest.partition("|")
            counts.setdefault((model, version), {})[what] = int(value)
        return sorted(
            (
                ClickThrough(model, version, c.get("served", 0), c.get("clicked", 0))
                for (model, version), c in counts.items()
            ),
            key=lambda row: (row.model, row.model_version),
        )
