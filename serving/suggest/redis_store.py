"""Redis adapter of the count store: sorted sets of counts, a titles hash and a change log.

Keys (prefix ``souk:suggest:``): ``q:<region>`` (query → decayed count), ``views`` (product →
decayed views), ``titles`` (product → {v, a, t}), ``log`` (changed member → sequence number),
``seq``, ``seen:<event id>`` (applied events, for a day). One Lua script applies a batch: an
event redelivered by Kafka or republished by the relay counts once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import redis

from serving.suggest.ports import (
    Changes,
    Op,
    ProductViewedOp,
    QuerySeen,
    Title,
)

PREFIX = "souk:suggest:"
_SEP = "\x1f"

_APPLY = """
local p = ARGV[1]
local ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local ops = cjson.decode(ARGV[4])
local applied = 0
local logged = false
for _, op in ipairs(ops) do
  if redis.call('SET', p .. 'seen:' .. op[2], '1', 'NX', 'EX', ttl) then
    applied = applied + 1
    local kind = op[1]
    if kind == 'q' then
      redis.call('ZINCRBY', p .. 'q:' .. op[3], op[5], op[4])
      local member = 'q\\31' .. op[3] .. '\\31' .. op[4]
      redis.call('ZADD', p .. 'log', redis.call('INCR', p .. 'seq'), member)
      logged = true
    elseif kind == 'v' then
      redis.call('ZINCRBY', p .. 'views', op[4], op[3])
    else
      local held = redis.call('HGET', p .. 'titles', op[3])
      local newer = true
      if held then newer = tonumber(cjson.decode(held)['v']) < tonumber(op[4]) end
      if newer then
        redis.call('HSET', p .. 'titles', op[3], cjson.encode({v = op[4], a = op[5], t = op[6]}))
        redis.call('ZADD', p .. 'log', redis.call('INCR', p .. 'seq'), 'p\\31' .. op[3])
        logged = true
      end
    end
  end
end
if logged then
  redis.call('ZREMRANGEBYRANK', p .. 'log', 0, -keep - 1)
end
return applied
"""


def _encode(op: Op) -> list[Any]:
    if isinstance(op, QuerySeen):
        return ["q", op.event_id, op.region, op.text, op.increment]
    if isinstance(op, ProductViewedOp):
        return ["v", op.event_id, op.product_id, op.increment]
    return ["t", op.event_id, op.product_id, op.version, 1 if op.active else 0, op.title]


def _title(product_id: str, raw: str | bytes) -> Title:
    held = json.loads(raw)
    return Title(product_id, str(held["t"]) if int(held["a"]) else None)


class RedisCountStore:
    """CountStore over one Redis (or Valkey) database."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = PREFIX,
        seen_ttl_s: int = 86_400,
        log_size: int = 100_000,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._seen_ttl_s = seen_ttl_s
        self._log_size = log_size
        self._apply = client.register_script(_APPLY)

    def apply(self, ops: Sequence[Op]) -> int:
        """Apply a batch once per event id, in one atomic script call."""
        if not ops:
            return 0
        payload = json.dumps([_encode(op) for op in ops], ensure_ascii=False)
        applied = self._apply(
            args=[self._prefix, self._seen_ttl_s, self._log_size, payload], client=self._redis
        )
        return int(cast(int, applied))

    def seq(self) -> int:
        """The newest change's sequence number (0 before any)."""
        value = self._redis.get(self._prefix + "seq")
        return int(cast(bytes, value)) if value is not None else 0

    def queries(self, region: str, limit: int) -> dict[str, float]:
        """The ``limit`` most searched queries of a region."""
        rows = self._redis.zrevrange(self._prefix + "q:" + region, 0, limit - 1, withscores=True)
        return {_text(member): float(score) for member, score in cast(list[Any], rows)}

    def views(self) -> dict[str, float]:
        """Product id → decayed views."""
        rows = self._redis.zrange(self._prefix + "views", 0, -1, withscores=True)
        return {_text(member): float(score) for member, score in cast(list[Any], rows)}

    def titles(self) -> dict[str, Title]:
        """Every title recorded from catalog events."""
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._prefix + "titles"))
        return {_text(k): _title(_text(k), v) for k, v in raw.items()}

    def changes_since(self, seq: int, limit: int) -> Changes:
        """Members logged after ``seq`` with their current values."""
        log = self._prefix + "log"
        rows = cast(
            list[Any],
            self._redis.zrangebyscore(log, f"({seq}", "+inf", start=0, num=limit, withscores=True),
        )
        oldest = cast(list[Any], self._redis.zrange(log, 0, 0, withscores=True))
        # The log was trimmed past what we hold: a reader that far behind reloads everything.
        complete = not oldest or seq == 0 or float(oldest[0][1]) <= seq + 1
        if not rows:
            return Changes(seq, {}, {}, {}, complete)
        queries: dict[str, list[str]] = {}
        products: list[str] = []
        for member, _ in rows:
            kind, _, rest = _text(member).partition(_SEP)
            if kind == "q":
                region, _, text = rest.partition(_SEP)
                queries.setdefault(region, []).append(text)
            else:
                products.append(rest)
        pipe = self._redis.pipeline(transaction=False)
        for region, texts in queries.items():
            pipe.zmscore(self._prefix + "q:" + region, texts)
        if products:
            pipe.hmget(self._prefix + "titles", products)
            pipe.zmscore(self._prefix + "views", products)
        answers = pipe.execute()
        counts = {
            region: {t: float(s or 0.0) for t, s in zip(texts, answers[i], strict=True)}
            for i, (region, texts) in enumerate(queries.items())
        }
        titles: dict[str, Title] = {}
        views: dict[str, float] = {}
        if products:
            raw_titles, raw_views = answers[-2], answers[-1]
            for product_id, raw, score in zip(products, raw_titles, raw_views, strict=True):
                titles[product_id] = (
                    _title(product_id, raw) if raw is not None else Title(product_id, None)
                )
                views[product_id] = float(score or 0.0)
        return Changes(int(rows[-1][1]), counts, titles, views, complete, more=len(rows) >= limit)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
