"""Redis adapter of the cart repository, and the slice's unit of work (PostgreSQL + Redis).

Layout per cart (the ``{cart_id}`` hash tag keeps a cart's keys in one cluster slot):

- ``souk:cart:{<id>}:meta``  hash: currency, created_at, customer_id, merged_into, last_order_id
- ``souk:cart:{<id>}:lines`` hash: ``q:<sku>`` → units (HINCRBY), ``d:<sku>`` → JSON details
  (product_id, seller_id, unit_price_minor seen when adding, added_at)
- ``souk:customer-cart:<customer_id>`` → the customer's active cart id

Every write is one Lua script (atomic: concurrent adds never lose units) that also refreshes
the time to live of all the cart's keys.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar, cast

import redis
from redis.commands.core import Script
from sqlalchemy import Engine

from transactional.carts.model import Cart, CartNotFound, Line, LineChange, Marker
from transactional.shared.errors import StoreUnavailable
from transactional.shared.outbox import Outbox
from transactional.shared.pipeline import PipelinedUnitOfWork, pyformat

log = logging.getLogger(__name__)

Undo = Callable[[], None]
P = ParamSpec("P")
R = TypeVar("R")


def _reachable(method: Callable[P, R]) -> Callable[P, R]:
    """Redis down or too slow → StoreUnavailable (503, retry) instead of a 500."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailable(f"the cart store (Redis) is unreachable: {error}") from error

    return call


# KEYS: meta, index | ARGV: ttl, cart id, stale index value ("" = none), meta field/value pairs.
# Creates the cart unless the customer index names another cart than the stale one we saw.
_CREATE = """
if KEYS[2] then
  local current = redis.call('GET', KEYS[2])
  if current and current ~= ARGV[3] then return current end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1]) end
return ARGV[2]
"""

# KEYS: meta, lines[, index] | ARGV: ttl, sku, delta, details JSON ("" = keep).
# Returns {units after, previous details or ""}; {-1, ""} if the cart is gone or merged.
_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'merged_into') == 1 then
  return {-1, ''}
end
local previous = redis.call('HGET', KEYS[2], 'd:' .. ARGV[2]) or ''
local units = redis.call('HINCRBY', KEYS[2], 'q:' .. ARGV[2], ARGV[3])
if units <= 0 then
  redis.call('HDEL', KEYS[2], 'q:' .. ARGV[2], 'd:' .. ARGV[2])
  units = 0
elseif ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'd:' .. ARGV[2], ARGV[4])
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return {units, previous}
"""

# KEYS: meta, lines[, index] | ARGV: ttl, field, value ("" = delete the field).
# Returns {1, previous value or ""}, or {0, ""} if the cart is gone.
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local previous = redis.call('HGET', KEYS[1], ARGV[2]) or ''
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return {1, previous}
"""

# KEYS: meta, lines[, index] | ARGV: cart id. Deletes the index only if it still names the cart.
_DELETE = """
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return redis.call('DEL', KEYS[1], KEYS[2])
"""


_LOCK = pyformat(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
    "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS keys"
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _details(line: Line) -> str:
    return json.dumps(
        {
            "product_id": line.product_id,
            "seller_id": line.seller_id,
            "unit_price_minor": line.unit_price_minor,
            "added_at": line.added_at.isoformat(),
        },
        separators=(",", ":"),
    )


class RedisCarts:
    """Carts in Redis with a time to live refreshed on every write.

    A journaled instance (see :meth:`journaled`) records how to undo each write it makes, so
    a unit of work that does not commit can put Redis back as it was.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_s: int,
        prefix: str = "souk:",
        journal: list[Undo] | None = None,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._prefix = prefix
        self._journal = journal
        self._create: Script = client.register_script(_CREATE)
        self._adjust: Script = client.register_script(_ADJUST)
        self._mark: Script = client.register_script(_MARK)
        self._delete: Script = client.register_script(_DELETE)

    def journaled(self, journal: list[Undo]) -> RedisCarts:
        """The same store, recording an undo step per write into ``journal``."""
        return RedisCarts(self._client, ttl_s=self._ttl_s, prefix=self._prefix, journal=journal)

    # -- keys --------------------------------------------------------------------------

    def meta_key(self, cart_id: str) -> str:
        """The meta hash of a cart."""
        return f"{self._prefix}cart:{{{cart_id}}}:meta"

    def lines_key(self, cart_id: str) -> str:
        """The lines hash of a cart."""
        return f"{self._prefix}cart:{{{cart_id}}}:lines"

    def index_key(self, customer_id: str) -> str:
        """The key naming a customer's active cart."""
        return f"{self._prefix}customer-cart:{customer_id}"

    def _keys(self, cart: Cart) -> list[str]:
        keys = [self.meta_key(cart.cart_id), self.lines_key(cart.cart_id)]
        if cart.customer_id is not None:
            keys.append(self.index_key(cart.customer_id))
        return keys

    # -- reads -------------------------------------------------------------------------

    @_reachable
    def get(self, cart_id: str) -> Cart | None:
        """A cart with its lines, or None if unknown or expired."""
        pipe = self._client.pipeline(transaction=True)  # one consistent snapshot
        pipe.hgetall(self.meta_key(cart_id))
        pipe.hgetall(self.lines_key(cart_id))
        raw_meta, raw_lines = pipe.execute()
        if not raw_meta:
            return None
        meta = {_text(k): _text(v) for k, v in raw_meta.items()}
        fields = {_text(k): _text(v) for k, v in raw_lines.items()}
        lines: dict[str, Line] = {}
        for name, value in fields.items():
            if not name.startswith("q:"):
                continue
            sku = name[2:]
            details = fields.get(f"d:{sku}")
            if details is None or int(value) <= 0:
                continue
            parsed: dict[str, Any] = json.loads(details)
            lines[sku] = Line(
                sku=sku,
                product_id=str(parsed["product_id"]),
                seller_id=str(parsed["seller_id"]),
                quantity=int(value),
                unit_price_minor=int(parsed["unit_price_minor"]),
                added_at=datetime.fromisoformat(str(parsed["added_at"])),
            )
        return Cart(
            cart_id=cart_id,
            currency=meta["currency"],
            created_at=datetime.fromisoformat(meta["created_at"]),
            customer_id=meta.get("customer_id") or None,
            lines=lines,
            merged_into=meta.get("merged_into") or None,
            last_order_id=meta.get("last_order_id") or None,
        )

    @_reachable
    def customer_cart_id(self, customer_id: str) -> str | None:
        """The id of the customer's active cart, if any."""
        value = cast(bytes | None, self._client.get(self.index_key(customer_id)))
        return _text(value) if value is not None else None

    @_reachable
    def ttl(self, cart_id: str) -> int:
        """Seconds the cart has left (-2 if it is gone)."""
        return int(cast(int, self._client.ttl(self.meta_key(cart_id))))

    # -- writes ------------------------------------------------------------------------

    @_reachable
    def create(self, cart: Cart) -> str:
        """Store a new empty cart, or return the id of the customer's active one."""
        stale = ""
        keys = [self.meta_key(cart.cart_id)]
        if cart.customer_id is not None:
            current = self.customer_cart_id(cart.customer_id)
            if current is not None:
                if self._client.exists(self.meta_key(current)):
                    return current
                stale = current  # the index outlived its cart: replace it
            keys.append(self.index_key(cart.customer_id))
        meta = {"currency": cart.currency, "created_at": cart.created_at.isoformat()}
        if cart.customer_id is not None:
            meta["customer_id"] = cart.customer_id
        pairs = [item for pair in meta.items() for item in pair]
        winner = _text(self._create(keys=keys, args=[self._ttl_s, cart.cart_id, stale, *pairs]))
        if winner == cart.cart_id and self._journal is not None:
            self._journal.append(lambda: self.delete(cart.cart_id, customer_id=cart.customer_id))
        return winner

    @_reachable
    def apply(self, cart: Cart, change: LineChange) -> int:
        """Add ``change.delta`` units to the line (removing it at 0); returns the units after."""
        units, previous = self._apply(cart, change.line.sku, change.delta, _details(change.line))
        if units < 0:
            raise CartNotFound(f"no cart {cart.cart_id}", cart_id=cart.cart_id)
        if self._journal is not None:
            sku, delta = change.line.sku, change.delta

            def undo() -> None:
                self._apply(cart, sku, -delta, previous)

            self._journal.append(undo)
        return units

    def _apply(self, cart: Cart, sku: str, delta: int, details: str) -> tuple[int, str]:
        result = self._adjust(keys=self._keys(cart), args=[self._ttl_s, sku, delta, details])
        return int(result[0]), _text(result[1])

    @_reachable
    def set_marker(self, cart: Cart, name: Marker, value: str) -> None:
        """Record a fact on the cart's meta hash."""
        found, previous = self._mark(keys=self._keys(cart), args=[self._ttl_s, name, value])
        if int(found) and self._journal is not None:
            before = _text(previous)
            self._journal.append(
                lambda: self._mark(keys=self._keys(cart), args=[self._ttl_s, name, before])
            )

    @_reachable
    def delete(self, cart_id: str, *, customer_id: str | None = None) -> None:
        """Remove a cart's keys (and the customer's index if it names this cart)."""
        keys = [self.meta_key(cart_id), self.lines_key(cart_id)]
        if customer_id is not None:
            keys.append(self.index_key(customer_id))
        self._delete(keys=keys, args=[cart_id])


class SqlCartsUnitOfWork(PipelinedUnitOfWork):
    """A PostgreSQL transaction for the outbox, with the Redis cart store attached.

    Redis and PostgreSQL share no transaction. Order of a write: take a per-cart advisory
    lock in the open PG transaction (serialises writers of one cart, so the outbox order is
    the order of the Redis changes), apply the change in Redis (atomic Lua), then commit the
    outbox rows. If anything fails before the commit succeeds, the Redis change is undone
    from the journal: no event for a change that did not happen, no change without its event.
    Only a process crash between the Redis write and the commit can lose the event (see the
    ``carts.before_commit`` failpoint); the cart then expires like any other.

    Unlike inventory, these Redis calls must stay inside the transaction: the advisory lock
    is what orders one cart's Redis changes like its outbox rows. They are few and small (one
    script per line changed), and each is bounded by the Redis client's socket timeout
    (``redis_timeout_s``), after which the transaction rolls back with a 503. PostgreSQL sees
    two round trips: BEGIN with the lock, then the outbox rows with COMMIT.
    """

    carts: RedisCarts

    def __init__(self, engine: Engine, outbox: Outbox, store: RedisCarts) -> None:
        super().__init__(engine.raw_connection, outbox)
        self._store = store
        self._undo: list[Undo] = []

    def __enter__(self) -> Self:
        super().__enter__()
        self._undo = []
        self.carts = self._store.journaled(self._undo)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._undo_redis()  # nothing to undo once committed
        finally:
            super().__exit__(exc_type, exc, tb)

    def lock(self, *keys: str) -> None:
        """Serialise writers of these keys until the transaction ends (sorted: no deadlock)."""
        self.begin()
        self.execute(_LOCK, {"keys": sorted(set(keys))})
        self.sync()  # held before any Redis change is made

    def commit(self) -> None:
        """Commit the outbox rows; the Redis changes are then final."""
        super().commit()
        self._undo.clear()

    def rollback(self) -> None:
        """Roll back PostgreSQL and undo the Redis changes of this unit of work."""
        try:
            super().rollback()
        finally:
            self._undo_redis()

    def _undo_redis(self) -> None:
        while self._undo:
            step = self._undo.pop()
            try:
                step()
            except Exception:  # keep undoing the rest; the cart expires eventually
                log.exception("could not undo a cart change in Redis")
