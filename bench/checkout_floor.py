"""The checkout's DB floor: its own two transactions replayed from plain psycopg threads.

The statements are the hot path's, queued by the same code (``checkout/transactions.py`` on
the slices' pipelined repositories) into a recorder instead of a connection, for synthetic
checkouts built before the clock starts. Replaying them in pipeline mode (BEGIN + data
statements, sync, outbox + COMMIT, sync: two round trips a transaction, as served) shows
what PostgreSQL alone can do per second: the ceiling the HTTP rate is compared with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Cursor
from sqlalchemy import Engine

from bench.start import StartLine
from schemas.ids import new_id
from transactional.checkout.dto import render
from transactional.checkout.model import (
    Allocation,
    Checkout,
    IdempotencyRecord,
    Plan,
    PlanLine,
    ShippingAddress,
)
from transactional.checkout.pipelined import PipelinedCheckoutUnitOfWork
from transactional.checkout.plan import order_of, payment_of, placed_of
from transactional.checkout.transactions import (
    complete_events,
    place_events,
    queue_complete,
    queue_place,
)
from transactional.inventory.model import Pick, Reservation, StockLevel, StockMove
from transactional.payments.events import authorization_event, captured_event
from transactional.payments.model import GatewayAuthorization
from transactional.shared.deferred import Deferred
from transactional.shared.outbox import Outbox
from transactional.shared.pipeline import Params, pyformat

# One recorded operation: ("sql", sql, params) | ("many", sql, [params]) | ("sync",).
Operation = tuple[Any, ...]
REGIONS = ("eu", "us", "in")


@dataclass(frozen=True)
class FloorSku:
    """A stocked SKU the synthetic checkouts buy."""

    sku: str
    warehouse_id: str
    product_id: str
    seller_id: str
    title: str
    price_minor: int


class RecordingUnitOfWork(PipelinedCheckoutUnitOfWork):
    """The hot path's unit of work with every statement recorded instead of sent."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(lambda: None, outbox)  # type: ignore[arg-type, return-value]
        self.operations: list[Operation] = []

    def __enter__(self) -> RecordingUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def begin(self) -> None:
        """Record BEGIN."""
        self.operations.append(("sql", "BEGIN", None))

    def query(self, sql: str, params: Params | None, read: Callable[[Cursor[Any]], Any]) -> Any:
        """Record a statement (its result is never read here)."""
        self.operations.append(("sql", sql, params))
        return Deferred.of(None)

    def execute(self, sql: str, params: Params | None = None) -> Deferred[int]:
        """Record a write."""
        self.operations.append(("sql", sql, params))
        return Deferred.of(1)

    def execute_many(self, sql: str, params: Iterable[Params]) -> None:
        """Record one statement per parameter set."""
        self.operations.append(("many", sql, list(params)))

    def sync(self) -> None:
        """Record a round trip."""
        self.operations.append(("sync",))

    def commit(self) -> None:
        """Record the outbox rows, COMMIT and the round trip."""
        for sql, params in self._outbox.statements(self.events):
            self.operations.append(("sql", pyformat(sql), params))
        self.operations.append(("sql", "COMMIT", None))
        self.operations.append(("sync",))
        self.events = []


def recorded_checkout(outbox: Outbox, item: FloorSku, n: int) -> list[list[Operation]]:
    """T1 and T2 of one synthetic one-line checkout, as the hot path queues them."""
    now = datetime.now(UTC)
    checkout = Checkout(
        checkout_id=new_id("chk"),
        customer_id=f"cus_floor_{n}",
        cart_id=f"crt_floor_{n}",
        idempotency_key=f"floor-{n}",
        region="eu",
        created_at=now,
        updated_at=now,
        lease_owner="floor",
        lease_until=now + timedelta(minutes=5),
    )
    shipping = ShippingAddress(
        full_name="Floor",
        line1="Invalidenstr. 116",
        city="Berlin",
        postal_code="10115",
        country="DE",
    )
    line = PlanLine(item.sku, item.product_id, item.seller_id, item.title, 1, item.price_minor)
    plan = Plan("EUR", (line,), item.price_minor, "eu", shipping)
    checkout.validated(plan, "tok_floor", "4242", now)
    reservation = Reservation(
        reservation_id=new_id("rsv"),
        checkout_id=checkout.checkout_id,
        sku=item.sku,
        warehouse_id=item.warehouse_id,
        region="eu",
        quantity=1,
        expires_at=now + timedelta(minutes=15),
        created_at=now,
        updated_at=now,
    )
    allocations = [Allocation(reservation.reservation_id, item.sku, item.warehouse_id, 1)]
    checkout.reserved(allocations, now)
    order = order_of(checkout, allocations, REGIONS, now)
    payment = payment_of(checkout, order, "sandbox", now)
    checkout.ordered(placed_of(order), payment.payment_id, now)
    record = IdempotencyRecord(
        checkout.customer_id,
        checkout.idempotency_key,
        "0" * 64,
        checkout.checkout_id,
        now,
        now + timedelta(days=1),
    )
    level = StockLevel(item.sku, item.warehouse_id, "eu", 1_000_000, 1)
    t1 = RecordingUnitOfWork(outbox)
    pick = Pick(item.sku, item.warehouse_id, 1)
    queue_place(t1, record, checkout, None, [pick], [reservation], order, payment, now)
    t1.sync()
    t1.emit(*place_events(checkout, [reservation], {pick.key: level}, order))
    t1.commit()
    order.history.clear()

    payment.record_authorization(
        GatewayAuthorization(
            reference=new_id("ch"),
            status="authorized",
            amount_minor=payment.amount_minor,
            currency="EUR",
            card_brand="visa",
            last4="4242",
            decline_code=None,
            expires_at=now + timedelta(days=7),
        ),
        now,
    )
    authorized = authorization_event(payment)
    payment.record_capture(payment.amount_minor, now)
    order.mark_paid(payment.payment_id, payment.amount_minor, now, "system:payments")
    checkout.authorized(now)
    checkout.captured(now)
    checkout.completed(now)
    t2 = RecordingUnitOfWork(outbox)
    queue_complete(t2, checkout, "floor", order, payment, render(checkout, None), now)
    t2.sync()
    move = StockMove(reservation.reservation_id, item.sku, item.warehouse_id, "eu", 1, 0)
    t2.emit(
        *complete_events(
            checkout,
            order,
            payment,
            authorized,
            captured_event(payment, payment.amount_minor),
            [move],
        )
    )
    t2.commit()
    return [t1.operations, t2.operations]


def replay(cursor: Cursor[Any], pipeline: Any, operations: Sequence[Operation]) -> None:
    """Send one recorded transaction, round trip by round trip."""
    for operation in operations:
        if operation[0] == "sql":
            cursor.execute(operation[1], operation[2])
        elif operation[0] == "many":
            cursor.executemany(operation[1], operation[2])
        else:
            pipeline.sync()


@dataclass(frozen=True)
class FloorResult:
    """What the replay achieved."""

    checkouts: int
    seconds: float

    @property
    def per_s(self) -> float:
        """Checkouts (T1 + T2) per second."""
        return self.checkouts / max(self.seconds, 1e-9)


def db_floor(
    engine: Engine,
    outbox: Outbox,
    skus: Sequence[FloorSku],
    threads: int,
    seconds: float,
    checkouts: int,
    *,
    around: Callable[[Callable[[], FloorResult]], FloorResult] = lambda run: run(),
) -> FloorResult:
    """Replay ``checkouts`` recorded checkouts from ``threads`` connections, for at most
    ``seconds``; ``around`` wraps the timed part (e.g. to read CPU counters)."""
    work = [recorded_checkout(outbox, skus[n % len(skus)], n) for n in range(checkouts)]
    shares = [work[n::threads] for n in range(threads)]
    done = [0] * threads
    ready = StartLine(threads + 1, seconds)

    def worker(index: int) -> None:
        pooled = engine.raw_connection()
        connection = pooled.driver_connection
        try:
            connection.autocommit = True
            cursor = connection.cursor()
            ready.wait()
            with connection.pipeline() as pipeline:
                for transactions in shares[index]:
                    if not ready.running():
                        break
                    for operations in transactions:
                        replay(cursor, pipeline, operations)
                    done[index] += 1
        finally:
            connection.autocommit = False
            pooled.close()

    def run() -> FloorResult:
        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in workers:
            thread.start()
        ready.wait()
        for thread in workers:
            thread.join()
        return FloorResult(sum(done), time.perf_counter() - ready.started)

    return around(run)
