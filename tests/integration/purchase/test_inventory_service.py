"""Inventory on the real stack: PostgreSQL stock + Redis Lua counters, races, drift, expiry."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

import souk.inventory_cli as inventory_cli
from souk.services import Services
from tests.unit.inventory.fakes import StaticSellers, StaticSkus
from transactional.inventory.counters import RedisStockCounters, counter_key
from transactional.inventory.model import InsufficientStock, ReservationReleased
from transactional.inventory.repository import SqlInventoryUnitOfWork
from transactional.inventory.service import InventoryService

pytestmark = pytest.mark.integration

TTL = 900


class Clock:
    """A settable clock (expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Stock:
    """An inventory service over the test stack, knowing the SKUs the test created."""

    def __init__(self, services: Services, engine: Engine) -> None:
        self.skus = StaticSkus()
        self.clock = Clock()
        self.counters = RedisStockCounters(services.redis)
        self.redis = services.redis
        self.engine = engine
        self.service = InventoryService(
            lambda: SqlInventoryUnitOfWork(services.engine, services.outbox),
            self.counters,
            skus=self.skus,
            sellers=StaticSellers(),
            regions=services.settings.regions,
            reservation_ttl_s=TTL,
            clock=self.clock,
        )

    def sku(self, **on_hand: int) -> str:
        """A fresh SKU stocked with ``warehouse=units``."""
        sku = f"SKU-INV-{secrets.token_hex(5).upper()}"
        self.skus.sellers[sku] = "sel_test"
        for warehouse_id, units in on_hand.items():
            self.service.set_on_hand(sku, warehouse_id, units, reason="receipt")
        return sku

    def pg(self, sku: str, warehouse_id: str) -> tuple[int, int]:
        """(on_hand, reserved) in PostgreSQL."""
        with self.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT on_hand, reserved FROM stock_levels "
                    "WHERE sku = :sku AND warehouse_id = :wh"
                ),
                {"sku": sku, "wh": warehouse_id},
            ).one()
        return (row.on_hand, row.reserved)

    def live(self, sku: str, warehouse_id: str) -> int | None:
        """The Redis counter."""
        return self.counters.read([(sku, warehouse_id)])[0]

    def events(self, sku: str) -> list[tuple[str, dict[str, Any]]]:
        """(event_type, payload) of the SKU's outbox rows, in order."""
        import json

        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT event_type, value FROM outbox WHERE message_key = :k ORDER BY id"),
                {"k": sku},
            ).all()
        return [(row.event_type, json.loads(bytes(row.value))["payload"]) for row in rows]

    def statuses(self, checkout_id: str) -> list[str]:
        """Statuses of a checkout's reservations."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    text("SELECT status FROM reservations WHERE checkout_id = :c ORDER BY sku"),
                    {"c": checkout_id},
                ).scalars()
            )


@pytest.fixture
def stock(services: Services, engine: Engine) -> Stock:
    return Stock(services, engine)


def checkout() -> str:
    return f"chk_{secrets.token_hex(8)}"


def race(threads: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``work(i)`` in ``threads`` threads released at the same instant."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcome = work(i)
        except BaseException as exc:  # collected and asserted on by the test
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(outcome)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in pool)
    return results, errors


def test_seeded_warehouses_exist(stock: Stock) -> None:
    ids = {w.warehouse_id: w.region for w in stock.service.warehouses()}
    assert {"wh_eu_1": "eu", "wh_us_1": "us", "wh_in_1": "in"}.items() <= ids.items()


def test_reserve_commit_release_round_trip_with_exact_numbers(stock: Stock) -> None:
    a = stock.sku(wh_eu_1=10, wh_us_1=4)
    b = stock.sku(wh_us_1=3)
    sold, dropped = checkout(), checkout()

    allocations = stock.service.reserve(sold, [(a, 6), (b, 1)], "us")
    # a: US has 4 (nearest, not enough), EU has all 6 → EU whole; b: US.
    assert sorted((x.sku, x.warehouse_id, x.quantity) for x in allocations) == sorted(
        [(a, "wh_eu_1", 6), (b, "wh_us_1", 1)]
    )
    assert stock.service.reserve(sold, [(a, 6), (b, 1)], "us") == allocations  # idempotent
    assert stock.pg(a, "wh_eu_1") == (10, 6) and stock.live(a, "wh_eu_1") == 4
    assert stock.pg(b, "wh_us_1") == (3, 1) and stock.live(b, "wh_us_1") == 2

    split = stock.service.reserve(dropped, [(a, 6)], "us")
    assert sorted((x.warehouse_id, x.quantity) for x in split) == [("wh_eu_1", 2), ("wh_us_1", 4)]
    assert stock.service.availability([a, b]) == {a: 2, b: 2}

    assert stock.service.release(dropped, "checkout_abandoned") == 2
    assert stock.pg(a, "wh_us_1") == (4, 0) and stock.live(a, "wh_us_1") == 4
    assert stock.pg(a, "wh_eu_1") == (10, 6) and stock.live(a, "wh_eu_1") == 4

    stock.service.commit(sold, "ord_1")
    stock.service.commit(sold, "ord_1")  # idempotent
    assert stock.pg(a, "wh_eu_1") == (4, 0) and stock.live(a, "wh_eu_1") == 4
    assert stock.pg(b, "wh_us_1") == (2, 0) and stock.live(b, "wh_us_1") == 2
    assert stock.service.release(sold, "payment_failed") == 0  # no-op after the sale
    assert stock.statuses(sold) == ["committed", "committed"]
    with pytest.raises(ReservationReleased):
        stock.service.commit(dropped, "ord_2")

    assert stock.service.restock("ord_1", "return") == 7
    assert stock.service.restock("ord_1", "return") == 0
    assert stock.pg(a, "wh_eu_1") == (10, 0) and stock.live(a, "wh_eu_1") == 10

    types = [event_type for event_type, _ in stock.events(a)]
    assert types == [
        "stock.adjusted",  # receipt EU
        "stock.adjusted",  # receipt US
        "stock.reserved",
        "stock.reserved",
        "stock.reserved",
        "stock.released",
        "stock.released",
        "stock.committed",
        "stock.adjusted",  # returned
    ]
    last = stock.events(a)[-1][1]
    assert last["reason"] == "return_restock" and last["on_hand_after"] == 10


def test_forty_threads_race_for_ten_units(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=10)

    def reserve(_: int) -> int:
        return len(stock.service.reserve(checkout(), [(sku, 1)], "eu"))

    won, errors = race(40, reserve)
    assert len(won) == 10, errors
    assert len(errors) == 30 and all(isinstance(e, InsufficientStock) for e in errors), errors
    assert stock.pg(sku, "wh_eu_1") == (10, 10)
    assert stock.live(sku, "wh_eu_1") == 0
    with stock.engine.connect() as connection:
        held = connection.execute(
            text("SELECT count(*), sum(quantity) FROM reservations WHERE sku = :s"), {"s": sku}
        ).one()
    assert tuple(held) == (10, 10)


def test_racing_while_redis_overstates_never_oversells(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=10)
    stock.redis.set(counter_key((sku, "wh_eu_1")), 100)  # drifted far above PostgreSQL

    def reserve(_: int) -> int:
        return len(stock.service.reserve(checkout(), [(sku, 1)], "eu"))

    won, errors = race(40, reserve)
    assert len(won) == 10, errors
    assert all(isinstance(e, InsufficientStock) for e in errors), errors
    assert stock.pg(sku, "wh_eu_1") == (10, 10)
    stock.service.reconcile(repair=True)
    assert stock.live(sku, "wh_eu_1") == 0


def test_one_short_sku_reserves_nothing_for_any(stock: Stock) -> None:
    a, b, c = stock.sku(wh_eu_1=5), stock.sku(wh_eu_1=5, wh_us_1=1), stock.sku(wh_in_1=1)
    with pytest.raises(InsufficientStock) as raised:
        stock.service.reserve(checkout(), [(a, 2), (b, 7), (c, 1)], "eu")
    assert raised.value.skus == [b]
    for sku, warehouse_id, units in [(a, "wh_eu_1", 5), (b, "wh_eu_1", 5), (c, "wh_in_1", 1)]:
        assert stock.pg(sku, warehouse_id) == (units, 0)
        assert stock.live(sku, warehouse_id) in (None, units)


def test_lua_gate_is_all_or_nothing_across_skus(stock: Stock) -> None:
    a, b = stock.sku(wh_eu_1=5), stock.sku(wh_eu_1=5)
    stock.redis.set(counter_key((a, "wh_eu_1")), 5)
    stock.redis.set(counter_key((b, "wh_eu_1")), 1)  # Redis alone says b is short
    from transactional.inventory.model import Pick

    result = stock.counters.reserve([Pick(a, "wh_eu_1", 2), Pick(b, "wh_eu_1", 2)])
    assert result.short == (b,) and not result.ok
    assert stock.live(a, "wh_eu_1") == 5 and stock.live(b, "wh_eu_1") == 1
    stock.redis.delete(counter_key((b, "wh_eu_1")))
    result = stock.counters.reserve([Pick(a, "wh_eu_1", 2), Pick(b, "wh_eu_1", 2)])
    assert result.missing == ((b, "wh_eu_1"),)
    assert stock.live(a, "wh_eu_1") == 5


def test_drift_is_detected_and_repaired(stock: Stock) -> None:
    up, down, cold = stock.sku(wh_eu_1=5), stock.sku(wh_eu_1=5), stock.sku(wh_eu_1=5)
    stock.service.reserve(checkout(), [(up, 1), (down, 1), (cold, 1)], "eu")
    stock.redis.set(counter_key((up, "wh_eu_1")), 42)
    stock.redis.set(counter_key((down, "wh_eu_1")), 0)
    stock.redis.delete(counter_key((cold, "wh_eu_1")))

    report = stock.service.reconcile(repair=False)
    mine = {d.sku: (d.redis, d.postgres) for d in report.drifts if d.sku in {up, down, cold}}
    assert mine == {up: (42, 4), down: (0, 4), cold: (None, 4)}
    assert report.checked >= 3 and report.repaired == 0
    assert stock.live(up, "wh_eu_1") == 42

    report = stock.service.reconcile(repair=True)
    assert report.repaired >= 3
    assert [stock.live(s, "wh_eu_1") for s in (up, down, cold)] == [4, 4, 4]
    again = stock.service.reconcile(repair=False)
    assert not [d for d in again.drifts if d.sku in {up, down, cold}]


def test_reserve_while_redis_says_more_than_postgres_does_not_oversell(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=2)
    stock.redis.set(counter_key((sku, "wh_eu_1")), 10)
    with pytest.raises(InsufficientStock):
        stock.service.reserve(checkout(), [(sku, 3)], "eu")
    assert stock.pg(sku, "wh_eu_1") == (2, 0)
    stock.service.reserve(checkout(), [(sku, 2)], "eu")
    with pytest.raises(InsufficientStock):
        stock.service.reserve(checkout(), [(sku, 1)], "eu")
    assert stock.pg(sku, "wh_eu_1") == (2, 2)


def test_a_counter_below_postgres_does_not_refuse_a_sale(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=5)
    stock.service.reserve(checkout(), [(sku, 1)], "eu")
    # Units lost in Redis, as a crash between the Lua gate and the PostgreSQL commit loses them.
    stock.redis.set(counter_key((sku, "wh_eu_1")), 0)
    stock.service.reserve(checkout(), [(sku, 2)], "eu")  # no reconcile in between
    assert stock.pg(sku, "wh_eu_1") == (5, 3)
    assert stock.live(sku, "wh_eu_1") == -2  # PostgreSQL decided; the counter is still low
    stock.service.reconcile(True, settle_s=0)
    assert stock.live(sku, "wh_eu_1") == 2


def test_a_hung_redis_never_holds_a_database_transaction_open(
    stock: Stock, services: Services, endpoints: Any
) -> None:
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from transactional.shared.db import create_db_engine

    sku = stock.sku(wh_eu_1=5)
    app = f"inv-hang-{secrets.token_hex(4)}"
    engine = create_db_engine(endpoints.database_url, pool_size=2, application_name=app)
    outcome: list[object] = []
    with socket.socket() as hole:  # accepts connections, never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        client = redis_lib.Redis(
            host="127.0.0.1",
            port=hole.getsockname()[1],
            socket_timeout=1.5,
            retry=Retry(NoBackoff(), 0),
        )
        hung = InventoryService(
            lambda: SqlInventoryUnitOfWork(engine, services.outbox),
            RedisStockCounters(client),
            skus=stock.skus,
            sellers=StaticSellers(),
            regions=services.settings.regions,
            reservation_ttl_s=TTL,
        )

        def reserve() -> None:
            try:
                outcome.append(hung.reserve(checkout(), [(sku, 1)], "eu"))
            except Exception as error:  # asserted on below
                outcome.append(error)

        worker = threading.Thread(target=reserve)
        worker.start()
        time.sleep(0.75)  # the reservation is now waiting for Redis
        with stock.engine.connect() as connection:
            open_transactions = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                    "AND xact_start IS NOT NULL"
                ),
                {"app": app},
            ).scalar_one()
        assert worker.is_alive(), "the reservation did not wait for Redis"
        worker.join(timeout=30)
    engine.dispose()
    assert open_transactions == 0
    # Redis timed out on every call: PostgreSQL alone reserved.
    assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
    assert stock.pg(sku, "wh_eu_1") == (5, 1)


def test_cold_counter_is_primed_from_postgres(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=6)
    stock.service.reserve(checkout(), [(sku, 2)], "eu")
    stock.redis.delete(counter_key((sku, "wh_eu_1")))  # e.g. Redis restarted empty
    stock.service.reserve(checkout(), [(sku, 3)], "eu")
    assert stock.live(sku, "wh_eu_1") == 1
    assert stock.pg(sku, "wh_eu_1") == (6, 5)


def test_expired_reservations_return_stock_once_even_with_two_sweepers(stock: Stock) -> None:
    sku = stock.sku(wh_eu_1=30)
    start = stock.clock.now - timedelta(seconds=TTL + 60)  # held an hour-quarter ago
    stock.clock.now = start
    expired = [checkout() for _ in range(12)]
    for checkout_id in expired:
        stock.service.reserve(checkout_id, [(sku, 2)], "eu")
    stock.clock.now = datetime.now(UTC)
    fresh = checkout()
    stock.service.reserve(fresh, [(sku, 1)], "eu")
    assert stock.pg(sku, "wh_eu_1") == (30, 25) and stock.live(sku, "wh_eu_1") == 5

    counts, errors = race(2, lambda _: stock.service.release_expired())
    assert not errors and sum(counts) >= len(expired)
    assert stock.pg(sku, "wh_eu_1") == (30, 1)
    assert stock.live(sku, "wh_eu_1") == 29
    assert all(stock.statuses(c) == ["released"] for c in expired)
    assert stock.statuses(fresh) == ["held"]
    released = [p for t, p in stock.events(sku) if t == "stock.released"]
    assert len(released) == len(expired)  # each exactly once
    assert {p["reason"] for p in released} == {"expired"}
    with pytest.raises(ReservationReleased):
        stock.service.commit(expired[0], "ord_late")


def test_cli_reconcile_prints_the_drift_and_repairs(
    stock: Stock, services: Services, endpoints: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = stock.sku(wh_us_1=3)
    stock.redis.set(counter_key((sku, "wh_us_1")), 9)
    settings = services.settings.model_copy(
        update={"database_url": endpoints.database_url, "redis_url": endpoints.redis_url}
    )
    monkeypatch.setattr(inventory_cli, "get_settings", lambda: settings)
    runner = CliRunner()

    looked = runner.invoke(inventory_cli.inventory_app, ["reconcile"], terminal_width=200)
    assert looked.exit_code == 0, looked.output
    assert sku in looked.output and "+6" in looked.output
    assert stock.live(sku, "wh_us_1") == 9

    repaired = runner.invoke(
        inventory_cli.inventory_app, ["reconcile", "--repair"], terminal_width=200
    )
    assert repaired.exit_code == 0, repaired.output
    assert "repaired" in repaired.output
    assert stock.live(sku, "wh_us_1") == 3
