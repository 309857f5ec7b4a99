"""Redis adapter of the StockCounters port: real-time available units per (sku, warehouse).

Every key carries the hash tag ``{inv}``. Redis Cluster hashes only the tag, so all counters
share one slot and one Lua script may check and decrement any cart's SKUs atomically (a
script may only touch keys of one slot). The price is that the whole inventory hot set lives
on one shard: one primary's CPU bounds reservation throughput (~100k script calls/s), and
replicas only help reads. That is ample for Souk; past it, tag per region (``{inv:eu}``) and
route carts to their shipping region's warehouses, or let PostgreSQL's conditional update
arbitrate cross-shard carts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from transactional.inventory.model import GateResult, Pick, StockKey
from transactional.shared.errors import StoreUnavailable

T = TypeVar("T")

KEY_PREFIX = "{inv}:avail:"

# Check every counter first, then decrement all of them, or none: a cart is all or nothing.
# Scripts run atomically, so no other client sees a half-reserved cart.
_RESERVE = """
local n = #KEYS
local missing, short = {}, {}
for i = 1, n do
  local value = redis.call('GET', KEYS[i])
  if not value then
    missing[#missing + 1] = KEYS[i]
  elseif tonumber(value) < tonumber(ARGV[i]) then
    short[#short + 1] = ARGV[n + i]
  end
end
if #missing > 0 then
  table.insert(missing, 1, 'missing')
  return missing
end
if #short > 0 then
  table.insert(short, 1, 'short')
  return short
end
for i = 1, n do
  redis.call('DECRBY', KEYS[i], ARGV[i])
end
return {'ok'}
"""

# Add deltas only to counters that exist: a missing one is primed from PostgreSQL later,
# and creating it here with just the delta would invent a wrong count.
_ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 1
"""

# Per key: overwrite only if the counter still holds what the caller saw ('' = missing), so a
# repair never clobbers a reservation that moved the counter in between.
_COMPARE_AND_SET = """
local done = 0
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  local expected = ARGV[2 * i - 1]
  if (current == false and expected == '') or current == expected then
    redis.call('SET', KEYS[i], ARGV[2 * i])
    done = done + 1
  end
end
return done
"""


def counter_key(key: StockKey) -> str:
    """The Redis key of a (sku, warehouse) counter."""
    sku, warehouse_id = key
    return f"{KEY_PREFIX}{warehouse_id}:{sku}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStockCounters:
    """Available-unit counters in Redis, changed only through Lua scripts or SET NX."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._adjust = client.register_script(_ADJUST)
        self._compare_and_set = client.register_script(_COMPARE_AND_SET)

    def read(self, keys: Sequence[StockKey]) -> list[int | None]:
        """Current counters, None where a key is missing."""
        if not keys:
            return []
        names = [counter_key(k) for k in keys]
        values = cast(list[Any], self._call(lambda: self._client.mget(names)))
        return [None if v is None else int(v) for v in values]

    def prime(self, values: Mapping[StockKey, int]) -> None:
        """Set counters that are missing (never overwrites an existing one)."""
        if not values:
            return

        def run() -> None:
            pipe = self._client.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(counter_key(key), value, nx=True)
            pipe.execute()

        self._call(run)

    def reserve(self, picks: Sequence[Pick]) -> GateResult:
        """Atomically: if every counter exists and covers its pick, decrement all; else none."""
        if not picks:
            return GateResult()
        keys = [counter_key(p.key) for p in picks]
        args = [p.quantity for p in picks] + [p.sku for p in picks]
        reply = self._call(lambda: self._reserve(keys=keys, args=args))
        status, *rest = [_text(item) for item in reply]
        if status == "missing":
            by_key = {counter_key(p.key): p.key for p in picks}
            return GateResult(missing=tuple(by_key[k] for k in rest))
        if status == "short":
            return GateResult(short=tuple(sorted(set(rest))))
        return GateResult()

    def adjust(self, deltas: Mapping[StockKey, int]) -> None:
        """Add signed deltas to the counters that exist (missing ones are primed later)."""
        if not deltas:
            return
        keys = [counter_key(k) for k in deltas]
        args = list(deltas.values())
        self._call(lambda: self._adjust(keys=keys, args=args))

    def compare_and_set(self, changes: Sequence[tuple[StockKey, int | None, int]]) -> int:
        """Per key, atomically: set to the new value if it still holds the expected one."""
        if not changes:
            return 0
        keys = [counter_key(key) for key, _, _ in changes]
        args: list[str | int] = []
        for _, expected, new in changes:
            args += ["" if expected is None else str(expected), new]
        return int(self._call(lambda: self._compare_and_set(keys=keys, args=args)))

    def delete(self, keys: Sequence[StockKey]) -> None:
        """Forget counters (tests and tools: the next reservation primes them again)."""
        if keys:
            self._call(lambda: self._client.delete(*[counter_key(k) for k in keys]))

    @staticmethod
    def _call(operation: Callable[[], T]) -> T:
        try:
            return operation()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc
