"""The fakes keep the promises the hot path relies on (else its tests would prove nothing):
pipelined results only after sync, writes only on commit, conditional statements that
refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.checkout.fakes import (
    SHOPPER,
    WAREHOUSE,
    FakeCheckoutUnitOfWork,
    FakeHotUnitOfWork,
    World,
)
from transactional.checkout.events import failed_event
from transactional.checkout.model import Checkout, Failure, IdempotencyRecord


def _record(world: World, checkout_id: str, ttl_s: float = 60) -> IdempotencyRecord:
    now = world.clock()
    return IdempotencyRecord(
        SHOPPER.customer_id, "k", "fp", checkout_id, now, now + timedelta(seconds=ttl_s)
    )


def _saga(world: World, checkout_id: str = "chk_1", owner: str = "lease-a") -> Checkout:
    now = world.clock()
    return Checkout(
        checkout_id,
        SHOPPER.customer_id,
        "crt_1",
        "k",
        "eu",
        now,
        now,
        lease_owner=owner,
        lease_until=now + timedelta(seconds=30),
    )


def test_a_pipelined_result_cannot_be_read_before_sync() -> None:
    world = World()
    with FakeHotUnitOfWork(world) as uow:
        stored = uow.keys.get(SHOPPER.customer_id, "k")
        with pytest.raises(AssertionError, match="read before sync"):
            stored.get()
        uow.sync()
        assert stored.get() is None


def test_a_write_outside_a_transaction_commits_alone_at_sync() -> None:
    world = World()
    with FakeHotUnitOfWork(world) as uow:
        claimed = uow.claims.claim("crt_1", "chk_1", None, world.clock())
        assert world.tables["claims"] == {}  # queued, not sent
        uow.sync()
        assert claimed.get() == "chk_1"
    assert world.claim("crt_1") == "chk_1"  # autocommit: no rollback takes it back


def test_writes_and_events_land_only_on_commit_and_go_with_a_rollback() -> None:
    world = World()
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        claimed = uow.keys.claim(_record(world, "chk_1"))
        uow.sync()
        assert claimed.get() == "chk_1" and world.tables["keys"] == {}  # not committed yet
        saga = _saga(world)
        saga.failed(Failure("validate", "x", "x"), (), world.clock())
        uow.emit(failed_event(saga, ()))
    assert world.tables["keys"] == {} and world.outbox == []
    assert world.calls[-1] == ("hot.rollback",)
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        uow.keys.claim(_record(world, "chk_1"))
        uow.emit(failed_event(saga, ()))
        uow.commit()
    assert list(world.tables["keys"]) == [(SHOPPER.customer_id, "k")]
    assert world.event_types() == ["checkout.failed"]


def test_conditional_statements_refuse_like_postgresql() -> None:
    world = World()
    world.stock("sku_a", on_hand=3)
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        key = uow.keys.claim(_record(world, "chk_1"))
        cart = uow.claims.claim("crt_1", "chk_1", None, world.clock())
        uow.checkouts.add(_saga(world))
        uow.commit()
    assert (key.get(), cart.get()) == ("chk_1", "chk_1")
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        live_key = uow.keys.claim(_record(world, "chk_2"))
        taken_cart = uow.claims.claim("crt_1", "chk_2", None, world.clock())
        too_many = uow.stock.hold("sku_a", WAREHOUSE, 4)
        enough = uow.stock.hold("sku_a", WAREHOUSE, 3)
        fenced = uow.checkouts.save(_saga(world), "lease-b")
        uow.sync()
        assert (live_key.get(), taken_cart.get(), too_many.get(), fenced.get()) == (
            None,
            None,
            None,
            0,
        )
        level = enough.get()
        assert level is not None and level.available == 0
    # An expired key is taken over.
    world.clock.advance(61)
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        taken_over = uow.keys.claim(_record(world, "chk_3"))
        uow.commit()
    assert taken_over.get() == "chk_3"


def test_the_saga_unit_of_work_sees_the_same_rows_and_writes_on_commit() -> None:
    world = World()
    with FakeHotUnitOfWork(world) as uow:
        uow.begin()
        uow.checkouts.add(_saga(world))
        uow.commit()
    with FakeCheckoutUnitOfWork(world) as saga_uow:
        assert saga_uow.checkouts.renew("chk_1", "lease-a", world.clock() + timedelta(hours=1))
        assert not saga_uow.checkouts.renew("chk_1", "lease-b", world.clock())
    assert world.saga("chk_1").lease_until == world.clock() + timedelta(seconds=30)  # rolled back
    with FakeCheckoutUnitOfWork(world) as saga_uow:
        saga_uow.checkouts.renew("chk_1", "lease-a", world.clock() + timedelta(hours=1))
        saga_uow.commit()
    assert world.saga("chk_1").lease_until == world.clock() + timedelta(hours=1)
    assert world.calls[-1] == ("saga.commit", ("checkouts.renew",))
