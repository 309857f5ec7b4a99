"""The Redis cart store reports an unreachable server as StoreUnavailable (503), not a 500."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration.http import free_port
from tests.unit.carts.fakes import NOW
from transactional.carts.model import Cart
from transactional.carts.repository import RedisCarts
from transactional.shared.errors import StoreUnavailable


def test_an_unreachable_redis_is_store_unavailable() -> None:
    client = redis.Redis(
        port=free_port(),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    store = RedisCarts(client, ttl_s=60)
    with pytest.raises(StoreUnavailable, match="cart store"):
        store.get("crt_1")
    with pytest.raises(StoreUnavailable):
        store.create(Cart("crt_1", "EUR", NOW))
    client.close()
