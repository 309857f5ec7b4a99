"""The trending job on Flink's mini-cluster: hand-made event sequences with a known top N.

Event times are synthetic: each test picks its own minute in the past (``T0``), so its window
keys never meet another test's. Watermarks move only when every partition of every source
topic has seen a later event: the tests publish "markers" (events the job reads but does not
score) to each partition, and set a long idle timeout so that no partition is skipped.

Weights: view 1, cart add 3, purchase 5 (one per order line, whatever the quantity).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from pyflink.common import Row, RowKind

from pipelines import control
from pipelines.common.checkpoints import checkpoint_number, latest_checkpoint
from pipelines.common.runner import Servers
from pipelines.common.sinks import STATS_KEY, RedisCommands, apply_commands
from pipelines.trending import (
    ALL,
    JOB,
    LATEST_KEY,
    TRENDING_TOPIC,
    TrendingWriter,
    category_scope,
    region_category_scope,
    region_scope,
    top,
    window_key,
    window_top,
)
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from tests.integration.streaming.conftest import running, wait_for

pytestmark = pytest.mark.integration

Publish = Callable[[Iterable[Envelope]], None]
Ranking = list[tuple[str, int]]

#: Event types the job reads (they move its watermarks) but does not score, per domain.
MARKER_TYPES = {
    "behaviour": "search.performed",
    "carts": "cart.item_removed",
    "orders": "order.paid",
    "catalog": "product.price_changed",
}
STATS = STATS_KEY.format(job="trending")


# --- events -----------------------------------------------------------------------------


def _eur(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "EUR"}


def _event(event_type: str, payload: dict[str, Any], region: str, at: datetime) -> Envelope:
    return REGISTRY.new_event(event_type, payload, region=region, occurred_at=at)


def product(
    region: str, at: datetime, product_id: str, category: str, *, updated: bool = False
) -> Envelope:
    """product.created (or .updated) putting ``product_id`` in ``category``."""
    payload: dict[str, Any] = {
        "product_id": product_id,
        "seller_id": "sel-1",
        "product_version": 2 if updated else 1,
        "title": f"Product {product_id}",
        "category_id": category,
        "price": _eur(1000),
    }
    return _event("product.updated" if updated else "product.created", payload, region, at)


def view(region: str, at: datetime, product_id: str, session: str = "ses-1") -> Envelope:
    """product.viewed (weight 1)."""
    payload = {"session_id": session, "product_id": product_id}
    return _event("product.viewed", payload, region, at)


def cart_add(region: str, at: datetime, product_id: str, quantity: int = 1) -> Envelope:
    """cart.item_added (weight 3, whatever the quantity)."""
    payload = {
        "cart_id": f"crt-{secrets.token_hex(4)}",
        "session_id": "ses-1",
        "sku": f"sku-{product_id}",
        "product_id": product_id,
        "seller_id": "sel-1",
        "quantity": quantity,
        "quantity_in_cart": quantity,
        "unit_price": _eur(1000),
    }
    return _event("cart.item_added", payload, region, at)


def order(region: str, at: datetime, *lines: tuple[str, int]) -> Envelope:
    """order.placed with one line per (product_id, quantity) (weight 5 per line)."""
    items = [
        {
            "line_id": f"lin-{i}",
            "sku": f"sku-{product_id}",
            "product_id": product_id,
            "seller_id": "sel-1",
            "quantity": quantity,
            "unit_price": _eur(1000),
            "warehouse_id": "wh-1",
        }
        for i, (product_id, quantity) in enumerate(lines)
    ]
    subtotal = 1000 * sum(quantity for _, quantity in lines)
    payload = {
        "order_id": f"ord-{secrets.token_hex(4)}",
        "customer_id": "cus-1",
        "region": region,
        "lines": items,
        "totals": {
            "subtotal": _eur(subtotal),
            "discount": _eur(0),
            "shipping": _eur(0),
            "tax": _eur(0),
            "grand_total": _eur(subtotal),
        },
        "shipping_address": {"country": "DE"},
        "fulfilment_groups": [
            {
                "group_id": "ful-1",
                "seller_id": "sel-1",
                "warehouse_id": "wh-1",
                "line_ids": [item["line_id"] for item in items],
            }
        ],
        "payment_method": "card",
    }
    return _event("order.placed", payload, region, at)


def marker(domain: str, region: str, at: datetime) -> Envelope:
    """An event of ``domain`` the job reads but does not score."""
    payloads: dict[str, dict[str, Any]] = {
        "behaviour": {
            "search_id": "srch-m",
            "session_id": "ses-m",
            "query": "marker",
            "result_count": 0,
        },
        "carts": {
            "cart_id": "crt-m",
            "session_id": "ses-m",
            "sku": "sku-m",
            "product_id": "prd-m",
            "quantity": 1,
        },
        "orders": {
            "order_id": "ord-m",
            "customer_id": "cus-m",
            "payment_id": "pay-m",
            "amount": _eur(1),
            "method": "card",
        },
        "catalog": {
            "product_id": "prd-m",
            "sku": "sku-m",
            "seller_id": "sel-1",
            "old_price": _eur(1),
            "new_price": _eur(2),
        },
    }
    return _event(MARKER_TYPES[domain], payloads[domain], region, at)


@pytest.fixture
def advance(stream_servers: Servers) -> Iterator[Callable[[Settings, datetime], None]]:
    """Publish a marker at ``at`` to every partition of every source topic of the job."""
    producer = Producer({"bootstrap.servers": stream_servers.kafka_bootstrap, "linger.ms": 5})

    def send(settings: Settings, at: datetime) -> None:
        for domain in JOB.source_domains:
            for region in settings.regions:
                value = msgspec.json.encode(marker(domain, region, at))
                for partition in range(settings.kafka_partitions):
                    producer.produce(
                        topic_for(domain, region), key=b"marker", value=value, partition=partition
                    )
        assert producer.flush(30) == 0

    yield send
    producer.flush(10)


def small_windows(settings: Settings, **update: Any) -> Settings:
    """1-minute windows sliding by 30 s, top 3, no partition ever idle during a test."""
    values = {
        "trending_window_s": 60,
        "trending_slide_s": 30,
        "trending_top_n": 3,
        # Every partition gets every marker, so idleness would only let the watermark jump
        # ahead of a partition Flink has not read yet.
        "stream_idle_timeout_s": 600.0,
        **update,
    }
    return settings.model_copy(update=values)


def origin(window_s: int) -> datetime:
    """A random past instant aligned to ``window_s`` (this test's T0)."""
    start = datetime(2021, 1, 1, tzinfo=UTC)
    return start + timedelta(seconds=window_s * secrets.randbelow(1_000_000))


def ms(at: datetime) -> int:
    """Epoch milliseconds of ``at``."""
    return round(at.timestamp() * 1000)


def rankings(
    client: redis.Redis, window_end: datetime, scopes: Iterable[str]
) -> dict[str, Ranking]:
    """Each scope's ranking in the window ending at ``window_end`` (Redis)."""
    return {scope: window_top(client, scope, ms(window_end), 100) for scope in scopes}


def settle(check: Callable[[], dict[str, Ranking]], expected: dict[str, Ranking]) -> None:
    """Wait until ``check()`` equals ``expected`` (then assert it, for a readable diff)."""
    try:
        wait_for(lambda: check() == expected, timeout_s=90)
    finally:
        assert check() == expected


# --- the topic ----------------------------------------------------------------------------


def topic_rankings(
    bootstrap: str, window_end: datetime, expected: dict[str, Ranking], timeout_s: float = 60
) -> dict[str, Ranking]:
    """The topic's rankings of ``expected``'s scopes in one window (latest value per key).

    Reads until they equal ``expected`` or the deadline passes (the broker's high watermark
    cannot say when everything was read).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"trending-test-{secrets.token_hex(4)}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    metadata = consumer.list_topics(TRENDING_TOPIC, timeout=10)
    partitions = metadata.topics[TRENDING_TOPIC].partitions
    consumer.assign([TopicPartition(TRENDING_TOPIC, p, OFFSET_BEGINNING) for p in partitions])
    state: dict[tuple[str, int], tuple[str, int]] = {}

    def current() -> dict[str, Ranking]:
        # Ranks of one scope live on different partitions: gaps are normal while reading (a
        # gap shows as "<rank N>" in place of the product).
        found: dict[str, Ranking] = {}
        for (scope, rank), (product_id, score) in sorted(state.items()):
            entries = found.setdefault(scope, [])
            entries.append((product_id if rank == len(entries) + 1 else f"<rank {rank}>", score))
        return found

    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            key = json.loads(message.key())
            if key["scope"] not in expected or _epoch_ms(key["window_end"]) != ms(window_end):
                continue
            value = message.value()
            if value is None:  # tombstone: the rank is gone
                state.pop((key["scope"], key["rank"]), None)
            else:
                record = json.loads(value)
                state[(key["scope"], key["rank"])] = (record["product_id"], record["score"])
            if current() == expected:
                break
    finally:
        consumer.close()
    return current()


def _epoch_ms(text: str) -> int:
    return ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


# --- tests ------------------------------------------------------------------------------


def test_writer_and_top_on_redis(stream_servers: Servers, redis_client: redis.Redis) -> None:
    """The job's Redis writer (through the sink's functions) and the read side, without Flink."""
    scope = f"region:t{secrets.token_hex(3)}"
    end = 1_700_000_040_000
    to_commands = RedisCommands(TrendingWriter(120), 4)
    client = redis.Redis.from_url(stream_servers.redis_url)

    def change(kind: RowKind, product_id: str, score: int, at: int = end) -> None:
        row = Row(scope, at, product_id, score)
        row.set_row_kind(kind)
        apply_commands(client, [commands for _buffer, commands in to_commands.flat_map(row)])

    assert top(redis_client, scope, 3) == []
    change(RowKind.INSERT, "p-a", 4)
    change(RowKind.INSERT, "p-b", 3)
    change(RowKind.INSERT, "p-c", 5)
    assert top(redis_client, scope, 3) == [("p-c", 5), ("p-a", 4), ("p-b", 3)]
    assert top(redis_client, scope, 2) == [("p-c", 5), ("p-a", 4)]
    # b's score changes: -U then +U (ZADD sets, never adds: a replay rewrites the same value)
    change(RowKind.UPDATE_BEFORE, "p-b", 3)
    change(RowKind.UPDATE_AFTER, "p-b", 8)
    change(RowKind.UPDATE_AFTER, "p-b", 8)
    # a tie goes to the smaller product id
    change(RowKind.INSERT, "p-0", 5)
    assert top(redis_client, scope, 3) == [("p-b", 8), ("p-0", 5), ("p-c", 5)]
    change(RowKind.DELETE, "p-0", 5)
    assert top(redis_client, scope, 10) == [("p-b", 8), ("p-c", 5), ("p-a", 4)]
    assert 0 < redis_client.ttl(window_key(scope, end)) <= 120
    # an older window (a late firing) does not move the latest pointer back
    change(RowKind.INSERT, "p-z", 1, at=end - 30_000)
    assert redis_client.hget(LATEST_KEY, scope) == str(end)
    assert top(redis_client, scope, 1) == [("p-b", 8)]
    assert window_top(redis_client, scope, end - 30_000, 5) == [("p-z", 1)]
    change(RowKind.INSERT, "p-y", 2, at=end + 30_000)
    assert top(redis_client, scope, 5) == [("p-y", 2)]
    client.close()


def test_weighted_top_n_per_scope_with_out_of_order_and_late_events(
    stream_servers: Servers,
    stream_settings: Settings,
    publish: Publish,
    advance: Callable[[Settings, datetime], None],
    redis_client: redis.Redis,
) -> None:
    settings = small_windows(stream_settings)  # out-of-orderness 2 s, lateness 10 s
    ra, rb = settings.regions
    tag = secrets.token_hex(3)
    a, b, c, d, e, u = (f"prd-{tag}-{x}" for x in "abcdeu")
    books, toys = f"books-{tag}", f"toys-{tag}"
    t0 = origin(60)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    # Windows (60 s sliding by 30 s): W0 ends at T0+30, W1 at T0+60, W2 at T0+90.
    w0, w1, w2 = at(30), at(60), at(90)
    redis_client.hdel(STATS, "late_dropped:trending_orders")
    catalog = [
        product(ra, at(-3600), a, books),
        product(ra, at(-3600), b, books),
        product(rb, at(-3600), c, books),
        product(ra, at(-3600), d, toys),
        product(rb, at(-3600), e, books),
        product(rb, at(10), e, toys, updated=True),  # e moves from books to toys at T0+10
    ]  # u is never announced: its category is "unknown"
    signals = [
        # region ra: a 4 views = 4 (the T0+5 one published after T0+6.5: out of order by
        # 1.5 s, within the 2 s bound), b 1 cart add = 3, c 1 purchase of 3 units = 5,
        # d 2 views + 1 cart add = 5
        view(ra, at(2), a),
        view(ra, at(4), a),
        view(ra, at(6.5), a),
        view(ra, at(5), a),
        cart_add(ra, at(8), b, quantity=4),
        order(ra, at(12), (c, 3)),
        view(ra, at(14), d, "ses-2"),
        view(ra, at(16), d, "ses-2"),
        cart_add(ra, at(18), d),
        # region rb: a 1 cart add + 1 purchase = 8, d 1 purchase = 5 (same order),
        # u 2 views = 2, e 1 view as a book (T0+5) and 1 as a toy (T0+15) = 2
        cart_add(rb, at(20), a),
        order(rb, at(22), (d, 1), (a, 2)),
        view(rb, at(25), u, "ses-3"),
        view(rb, at(24), u, "ses-3"),
        view(rb, at(5), e, "ses-4"),
        view(rb, at(15), e, "ses-4"),
    ]
    before = {
        ALL: [(a, 12), (d, 10), (c, 5)],
        region_scope(ra): [(c, 5), (d, 5), (a, 4)],  # a tie goes to the smaller id
        region_scope(rb): [(a, 8), (d, 5), (e, 2)],  # e beats u (2) on the tie
        category_scope(books): [(a, 12), (c, 5), (b, 3)],
        category_scope(toys): [(d, 10), (e, 1)],
        category_scope("unknown"): [(u, 2)],
        region_category_scope(ra, books): [(c, 5), (a, 4), (b, 3)],
        region_category_scope(ra, toys): [(d, 5)],
        region_category_scope(rb, books): [(a, 8), (e, 1)],
        region_category_scope(rb, toys): [(d, 5), (e, 1)],
        region_category_scope(rb, "unknown"): [(u, 2)],
    }
    # A purchase of b at T0+55, 7 s behind the watermark (T0+62): late but allowed, it fires
    # W1 again. A purchase of e at T0+40 is 22 s behind: dropped (from W2 as well) and counted.
    after = {
        **before,
        ALL: [(a, 12), (d, 10), (b, 8)],
        region_scope(ra): [(b, 8), (c, 5), (d, 5)],
        category_scope(books): [(a, 12), (b, 8), (c, 5)],
        region_category_scope(ra, books): [(b, 8), (c, 5), (a, 4)],
    }
    only_b = [(b, 5)]
    in_w2 = {
        ALL: only_b,
        region_scope(ra): only_b,
        category_scope(books): only_b,
        region_category_scope(ra, books): only_b,
        category_scope(toys): [],
        region_category_scope(ra, toys): [],
        region_scope(rb): [],
    }

    with running(JOB, settings, stream_servers):
        publish(catalog)
        publish(signals)
        advance(settings, at(64))  # watermark T0+62: W0 and W1 fire
        settle(lambda: rankings(redis_client, w1, before), before)
        assert rankings(redis_client, w0, before) == before  # all events are in W0 too
        assert top(redis_client, region_scope(ra), 3) == before[region_scope(ra)]
        assert redis_client.hget(LATEST_KEY, region_scope(rb)) == str(ms(w1))

        publish([order(ra, at(55), (b, 1)), order(ra, at(40), (e, 1))])
        advance(settings, at(66))  # watermark T0+64 (the join emits what it held)
        settle(lambda: rankings(redis_client, w1, after), after)
        wait_for(lambda: redis_client.hget(STATS, "late_dropped:trending_orders") == "1")
        assert rankings(redis_client, w0, before) == before  # T0+55 is not in W0

        advance(settings, at(95))  # watermark T0+93: W2 fires, W1 is closed for good
        settle(lambda: rankings(redis_client, w2, in_w2), in_w2)
        assert top(redis_client, region_scope(ra), 3) == only_b
        assert top(redis_client, region_scope(rb), 3) == before[region_scope(rb)]
        assert rankings(redis_client, w1, after) == after
        assert redis_client.hget(STATS, "late_dropped:trending_orders") == "1"
        assert redis_client.hget(STATS, "late_dropped:trending_views") is None

        # The topic: ranks 1..N per (scope, window), the latest value per key.
        assert topic_rankings(stream_servers.kafka_bootstrap, w1, after) == after


def test_hour_windows_survive_a_sigkill_without_double_counting(
    stream_servers: Servers,
    stream_settings: Settings,
    publish: Publish,
    advance: Callable[[Settings, datetime], None],
    redis_client: redis.Redis,
) -> None:
    """The default window (1 h sliding by 1 min); a background job killed with SIGKILL resumes
    from its last checkpoint, and a window's state outlives the crash."""
    settings = small_windows(
        stream_settings, trending_window_s=3600, trending_slide_s=60, trending_top_n=2
    )
    ra, rb = settings.regions
    tag = secrets.token_hex(3)
    x, y, z = (f"prd-{tag}-{name}" for name in "xyz")
    t0 = origin(3600)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    first, second = at(60), at(120)  # ends of [T0-59 min, T0+1 min) and the next window
    scopes = (ALL, region_scope(ra))
    try:
        control.start(settings, JOB.name)
        publish([view(ra, at(10), x), view(ra, at(20), x), cart_add(ra, at(30), y)])
        publish([order(rb, at(40), (z, 1))])
        advance(settings, at(64))  # watermark T0+62: the window ending at T0+60 fires
        expected = {ALL: [(z, 5), (y, 3)], region_scope(ra): [(y, 3), (x, 2)]}
        settle(lambda: rankings(redis_client, first, scopes), expected)
        assert top(redis_client, region_scope(ra), 5) == expected[region_scope(ra)]
        # two more checkpoints: the last one holds the window's state after it fired
        done = checkpoint_number(latest_checkpoint(settings, JOB.name)) or 0
        wait_for(
            lambda: (checkpoint_number(latest_checkpoint(settings, JOB.name)) or 0) >= done + 2
        )
        assert control.kill(settings, JOB.name)

        # two more views of x while it is down, 7 s behind the last watermark: x has
        # 2 + 2 = 4 only if the restored window still held its first two (and nothing was
        # counted twice)
        publish([view(ra, at(55), x, "ses-2"), view(ra, at(56), x, "ses-2")])
        control.start(settings, JOB.name)  # resumes from the latest checkpoint
        advance(settings, at(66))
        expected = {ALL: [(z, 5), (x, 4)], region_scope(ra): [(x, 4), (y, 3)]}
        settle(lambda: rankings(redis_client, first, scopes), expected)
        advance(settings, at(125))  # the next window (one minute later) has the same events
        settle(lambda: rankings(redis_client, second, scopes), expected)
        assert top(redis_client, region_scope(ra), 5) == expected[region_scope(ra)]
        assert redis_client.hget(LATEST_KEY, ALL) is not None
        log = control.runs_dir(settings) / f"{JOB.name}.log"
        assert "resuming from file:" in log.read_text()
    finally:
        control.stop(settings, JOB.name)
