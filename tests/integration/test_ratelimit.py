"""Rate limits against the real Valkey: per IP, per user, sign-in/sign-up, 429 problems."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from serving.app import create_app
from serving.ratelimit import Limit, RateLimiter
from souk.services import Services
from tests.integration.conftest_stack_helpers import closed_port
from tests.integration.http import assert_problem, register, serve_in_thread

IP_LIMIT, USER_LIMIT, AUTH_LIMIT = 5, 3, 2


@pytest.fixture(scope="module")
def limited_url(services: Services) -> Iterator[str]:
    """The app with small limits and no exempt network, on a live loopback server (a
    trusted proxy, so each test names its client with X-Forwarded-For)."""
    settings = services.settings.model_copy(
        update={
            "ratelimit_exempt": ["198.51.100.0/24"],
            "ratelimit_ip_per_min": IP_LIMIT,
            "ratelimit_user_per_min": USER_LIMIT,
            "ratelimit_auth_per_min": AUTH_LIMIT,
        }
    )
    # Same services, other settings; the live server runs no lifespan, so nothing is closed.
    with serve_in_thread(create_app(dataclasses.replace(services, settings=settings))) as url:
        yield url


def _ip() -> str:
    return f"203.0.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def _suggest(http: httpx.Client, ip: str, **headers: str) -> httpx.Response:
    return http.get("/v1/suggest", params={"q": "wi"}, headers={"X-Forwarded-For": ip, **headers})


def test_per_ip_limit_answers_429_with_retry_after(limited_url: str) -> None:
    ip = _ip()
    with httpx.Client(base_url=limited_url) as http:
        codes = [_suggest(http, ip).status_code for _ in range(IP_LIMIT)]
        assert codes == [200] * IP_LIMIT
        refused = _suggest(http, ip)
        body = assert_problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert body["retry_after_s"] == int(refused.headers["Retry-After"])
        assert _suggest(http, _ip()).status_code == 200  # another client is not affected
        assert http.get("/health", headers={"X-Forwarded-For": ip}).status_code == 200


def test_per_user_limit_across_addresses(limited_url: str) -> None:
    with httpx.Client(base_url=limited_url) as http:
        shopper = register(http, region="eu", currency="EUR")
        auth = shopper["headers"]
        codes = [_suggest(http, _ip(), **auth).status_code for _ in range(USER_LIMIT + 1)]
        assert codes == [200] * USER_LIMIT + [429]
        assert _suggest(http, _ip()).status_code == 200  # the same addresses as a guest pass


def test_sign_in_and_sign_up_share_a_per_ip_limit(limited_url: str) -> None:
    ip = _ip()
    headers = {"X-Forwarded-For": ip}
    with httpx.Client(base_url=limited_url) as http:
        wrong = {"email": "nobody@example.com", "password": "not the password"}
        assert http.post("/v1/auth/token", json=wrong, headers=headers).status_code == 401
        signup = {"email": f"x-{secrets.token_hex(4)}@example.com", "password": "short"}
        assert http.post("/v1/customers", json=signup, headers=headers).status_code != 429
        assert_problem(
            http.post("/v1/auth/token", json=wrong, headers=headers), 429, "rate_limited"
        )
        assert_problem(
            http.post("/v1/customers", json=signup, headers=headers), 429, "rate_limited"
        )
        # Reading one's profile is no sign-in: not limited by this rule.
        assert http.get("/v1/customers/me", headers=headers).status_code == 401


def test_exempt_network_is_never_limited(limited_url: str) -> None:
    with httpx.Client(base_url=limited_url) as http:
        codes = {_suggest(http, "198.51.100.9").status_code for _ in range(IP_LIMIT * 2)}
        assert codes == {200}


def test_concurrent_requests_never_overdraw(limited_url: str) -> None:
    ip = _ip()
    with httpx.Client(base_url=limited_url) as http, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _suggest(http, ip).status_code, range(20)))
    assert codes.count(200) == IP_LIMIT and codes.count(429) == 20 - IP_LIMIT


def test_redis_down_fails_open_with_a_log_line(caplog: Any) -> None:
    dead = redis.Redis(port=closed_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = RateLimiter(dead)
    with caplog.at_level(logging.WARNING, logger="souk.ratelimit"):
        assert limiter.hit([Limit("read:ip:203.0.113.1", 1)]) is None
        assert limiter.hit([Limit("read:ip:203.0.113.1", 1)]) is None
    lines = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(lines) == 1  # one line per outage, not one per request


def test_default_exemption_leaves_loopback_unlimited(services: Services) -> None:
    # The suite, the simulator and the demo call from 127.0.0.1: under the default exempt
    # networks even a limit of 5 never refuses them.
    settings = services.settings.model_copy(update={"ratelimit_ip_per_min": IP_LIMIT})
    assert "127.0.0.0/8" in settings.ratelimit_exempt
    app = create_app(dataclasses.replace(services, settings=settings))
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as http:
        codes = {
            http.get("/v1/suggest", params={"q": "a"}).status_code for _ in range(3 * IP_LIMIT)
        }
    assert codes == {200}
