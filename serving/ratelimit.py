"""Rate limits: per client IP and per signed-in user, GCRA in one Redis Lua script.

Two rules: ``read`` (the serving endpoints, by path prefix from the settings, per IP and per
user) and ``auth`` (sign-in and sign-up, handlers marked ``opt={"rate_limit": "auth"}``, per
IP). Over a limit → 429 problem+json ``rate_limited`` with ``Retry-After``. Every key of a
request is checked and charged in one script call, so concurrent requests of many processes
cannot overdraw it. Redis down or slow → the request passes and a line is logged (a
storefront without limits beats a storefront that is down).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any, cast

import redis
from litestar import Request
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.problems import problem
from transactional.checkout.dto import ClientNetworks
from transactional.shared.auth import ADMIN, TokenCodec
from transactional.shared.errors import DomainError

_LOG = logging.getLogger("souk.ratelimit")
AUTH = "auth"  # the ``rate_limit`` opt value of sign-in and sign-up
OPT_KEY = "rate_limit"
KEY_PREFIX = "souk:rl:"

# GCRA (the generic cell rate algorithm): per key, the "theoretical arrival time" of the next
# request. ARGV: per key, the emission interval T and the burst tolerance (µs). A request is
# admitted if every key admits it; then each key's TAT moves by T. Returns 0 or the wait (µs).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allow_at = tat + interval - tolerance
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
  tats[i] = tat + interval
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``per_minute`` requests a minute per key, in bursts of up to as many."""

    key: str
    per_minute: int

    def argv(self) -> tuple[int, int]:
        """(emission interval, burst tolerance) in microseconds."""
        interval = 60_000_000 // self.per_minute
        return interval, interval * self.per_minute


class RateLimiter:
    """Checks and charges limits in Redis; None when admitted, else seconds to wait."""

    def __init__(self, client: redis.Redis, *, log_every_s: float = 30.0) -> None:
        self._redis = client
        self._script = client.register_script(_GCRA)
        self._log_every_s = log_every_s
        self._logged_at = -math.inf

    def hit(self, limits: Sequence[Limit]) -> float | None:
        """Charge one request to every limit at once; the wait in seconds if refused."""
        if not limits:
            return None
        args: list[int] = []
        for limit in limits:
            args.extend(limit.argv())
        try:
            wait_us = int(
                cast(
                    int,
                    self._script(
                        keys=[KEY_PREFIX + limit.key for limit in limits],
                        args=args,
                        client=self._redis,
                    ),
                )
            )
        except redis.RedisError as error:
            now = time.monotonic()
            if now - self._logged_at >= self._log_every_s:  # one line per outage, not per request
                self._logged_at = now
                _LOG.warning("rate limits off: Redis unavailable (%s); requests pass", error)
            return None
        return wait_us / 1_000_000 if wait_us > 0 else None

    def close(self) -> None:
        """Release the Redis connections."""
        self._redis.close()


@dataclass(frozen=True)
class RateLimitPolicy:
    """Which requests are limited, by what, and whom we never limit."""

    enabled: bool
    paths: tuple[str, ...]
    ip_per_min: int
    user_per_min: int
    auth_per_min: int
    exempt: tuple[IPv4Network | IPv6Network, ...]

    @classmethod
    def of(cls, settings: Any) -> RateLimitPolicy:
        """From ``souk.settings.Settings``."""
        return cls(
            enabled=settings.ratelimit_enabled,
            paths=tuple(settings.ratelimit_paths),
            ip_per_min=settings.ratelimit_ip_per_min,
            user_per_min=settings.ratelimit_user_per_min,
            auth_per_min=settings.ratelimit_auth_per_min,
            exempt=tuple(ip_network(cidr) for cidr in settings.ratelimit_exempt),
        )

    def exempted(self, ip: str) -> bool:
        """Whether a client address is never limited."""
        address = ip_address(ip)
        return any(address.version == n.version and address in n for n in self.exempt)

    def limits(self, rule: str | None, ip: str | None, user: str | None) -> list[Limit]:
        """The limits a request of ``rule`` from ``ip`` (and ``user``) is charged to."""
        if rule is None or not self.enabled or (ip is not None and self.exempted(ip)):
            return []
        if rule == AUTH:
            return [] if ip is None else [Limit(f"auth:ip:{ip}", self.auth_per_min)]
        limits = [] if ip is None else [Limit(f"read:ip:{ip}", self.ip_per_min)]
        if user is not None:
            limits.append(Limit(f"read:user:{user}", self.user_per_min))
        return limits

    def rule_of(self, path: str, opt: dict[str, Any]) -> str | None:
        """The rule of a route: ``auth`` by its opt, ``read`` by path prefix, else none."""
        if opt.get(OPT_KEY) == AUTH:
            return AUTH
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths):
            return "read"
        return None


class RateLimitMiddleware(ASGIMiddleware):
    """Answers 429 before the handler when the caller is over a limit."""

    scopes = cast(Any, ("http",))

    def __init__(
        self,
        limiter: RateLimiter,
        policy: RateLimitPolicy,
        networks: ClientNetworks,
        tokens: TokenCodec,
    ) -> None:
        self.limiter = limiter
        self.policy = policy
        self.networks = networks
        self.tokens = tokens

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Charge the request to its limits; refuse it with 429 when one is exhausted."""
        handler = scope.get("route_handler")
        rule = self.policy.rule_of(scope["path"], dict(getattr(handler, "opt", None) or {}))
        if rule is None or not self.policy.enabled:
            await next_app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope)
        peer = request.client.host if request.client is not None else None
        forwarded = ",".join(request.headers.getall("x-forwarded-for", []))
        ip = self.networks.client_ip(peer, forwarded or None)
        limits = self.policy.limits(rule, ip, self._user(request) if rule != AUTH else None)
        wait = self.limiter.hit(limits)
        if wait is None:
            await next_app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = problem(
            request,
            429,
            f"too many requests: retry in {retry_after} s",
            code="rate_limited",
            extra={"retry_after_s": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    def _user(self, request: Request[Any, Any, Any]) -> str | None:
        """The signed-in customer; admins and services are not limited per user."""
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            principal = self.tokens.verify(token.strip())
        except DomainError:
            return None  # the handler answers 401; the IP limit still applies
        return None if ADMIN in principal.roles else principal.customer_id


def rate_limit_middleware(services: Any) -> list[RateLimitMiddleware]:
    """The app's rate-limit middleware over ``services`` (none when not wired or disabled)."""
    limiter = services.provided.get("rate_limiter")
    settings = services.settings
    if limiter is None or not settings.ratelimit_enabled:
        return []
    networks = ClientNetworks.of(settings.trusted_proxies, settings.ip_regions)
    return [RateLimitMiddleware(limiter, RateLimitPolicy.of(settings), networks, services.tokens)]
