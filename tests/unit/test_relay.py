"""Relay rules on fakes: order, marking only what the broker confirmed, standby."""

from __future__ import annotations

import threading
import time

from tests.fakes import FakeOutboxStore, FakePublisher
from transactional.shared.errors import StoreUnavailable
from transactional.shared.ports import DeliveryCallback, OutboxRecord, OutgoingMessage
from transactional.shared.relay import Relay


def records(n: int, keys: int = 3) -> list[OutboxRecord]:
    return [
        OutboxRecord(
            id=i, topic="eu.orders.v1", key=f"ord_{i % keys}", value=str(i).encode(), headers={}
        )
        for i in range(1, n + 1)
    ]


def test_publishes_in_id_order_and_marks_all() -> None:
    store, publisher = FakeOutboxStore(records(10)), FakePublisher()
    result = Relay(store, publisher, batch_size=4).relay_once()
    assert (result.fetched, result.published, result.failed) == (4, 4, 0)
    assert [m.ref for m in publisher.sent] == [1, 2, 3, 4]
    assert store.published == {1, 2, 3, 4}


def test_failure_marks_only_the_confirmed_prefix_and_order_survives() -> None:
    failures = {5: 2, 9: 1}  # outbox id -> how many times the broker rejects it

    def fail(message: OutgoingMessage) -> str | None:
        if failures.get(message.ref, 0) > 0:
            failures[message.ref] -= 1
            return "broker: request timed out"
        return None

    store, publisher = FakeOutboxStore(records(12)), FakePublisher(fail)
    relay = Relay(store, publisher, batch_size=12)
    first = relay.relay_once()
    assert (first.published, first.failed) == (4, 5)  # 5 and 9 rejected, 8, 11, 12 behind them
    assert store.published == {1, 2, 3, 4}
    assert relay.drain(timeout_s=5) == 8
    assert store.published == set(range(1, 13))
    # Duplicates are allowed (at-least-once); what matters is that the first delivery of each
    # event, key by key, is in commit (id) order, as a deduplicating consumer will see it.
    first_seen: dict[str, list[int]] = {}
    for message in publisher.sent:
        refs = first_seen.setdefault(message.key, [])
        if message.ref not in refs:
            refs.append(message.ref)
    for key, refs in first_seen.items():
        assert refs == sorted(refs), key
    assert sorted(ref for refs in first_seen.values() for ref in refs) == list(range(1, 13))


def test_a_batch_in_flight_is_awaited_not_refetched() -> None:
    class SlowPublisher(FakePublisher):
        """Confirms two messages per flush, like a broker that is catching up."""

        def flush(self, timeout: float) -> int:
            ready, self._queued = self._queued[:2], self._queued[2:]
            for message, callback in ready:
                self.sent.append(message)
                callback(message, None)
            return len(self._queued)

    store, publisher = FakeOutboxStore(records(5)), SlowPublisher()
    relay = Relay(store, publisher)
    first = relay.relay_once()
    assert (first.published, first.in_flight) == (2, 3)
    assert store.published == {1, 2}
    relay.relay_once()
    relay.relay_once()
    assert store.published == {1, 2, 3, 4, 5}
    assert [m.ref for m in publisher.sent] == [1, 2, 3, 4, 5]  # no duplicates while waiting


def test_standby_relay_publishes_nothing() -> None:
    store, publisher = FakeOutboxStore(records(3), leader=False), FakePublisher()
    relay = Relay(store, publisher)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    stop.wait(0.3)
    stop.set()
    thread.join(5)
    assert publisher.sent == [] and store.published == set()
    store.leader = True
    assert relay.drain(timeout_s=5) == 3


def test_run_rides_out_a_store_outage_and_purges() -> None:
    class FlakyStore(FakeOutboxStore):
        outages = 2

        def fetch_unpublished(self, limit: int) -> list[OutboxRecord]:
            if self.outages:
                self.outages -= 1
                raise StoreUnavailable("outbox database connection lost")
            return super().fetch_unpublished(limit)

    store, publisher = FlakyStore(records(6)), FakePublisher()
    relay = Relay(store, publisher)
    stop = threading.Event()
    thread = threading.Thread(
        target=relay.run,
        args=(stop,),
        kwargs={"poll_interval_s": 0.01, "purge_every_s": 0, "retention_s": 0},
    )
    thread.start()
    deadline = time.monotonic() + 5
    while store.records and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert [m.ref for m in publisher.sent] == [1, 2, 3, 4, 5, 6]
    assert store.records == []  # published rows purged by the retention pass


def test_an_immediate_refusal_stops_the_batch_so_nothing_overtakes_it() -> None:
    class RefusingPublisher(FakePublisher):
        """Refuses outbox id 3 inside publish(), as a producer does with a local error."""

        refusals = 1

        def publish(self, message: OutgoingMessage, on_delivery: DeliveryCallback) -> None:
            if message.ref == 3 and self.refusals:
                self.refusals -= 1
                on_delivery(message, "Message size too large")
                return
            super().publish(message, on_delivery)

    store, publisher = FakeOutboxStore(records(6, keys=1)), RefusingPublisher()
    relay = Relay(store, publisher)
    first = relay.relay_once()
    assert [m.ref for m in publisher.sent] == [1, 2]  # 4..6 were never handed over
    assert (first.published, first.failed) == (2, 1)
    assert relay.drain(timeout_s=5) == 4
    assert [m.ref for m in publisher.sent] == [1, 2, 3, 4, 5, 6]


def test_a_stalled_batch_restarts_the_producer_and_resends_from_the_outbox() -> None:
    class ForgetfulBroker(FakePublisher):
        """Never reports anything until the producer is reset (a broker that lost our id)."""

        def flush(self, timeout: float) -> int:
            if self.resets == 0:
                return len(self._queued)
            return super().flush(timeout)

    store, publisher = FakeOutboxStore(records(4)), ForgetfulBroker()
    relay = Relay(store, publisher, stall_timeout_s=0.05)
    assert relay.relay_once().in_flight == 4
    time.sleep(0.1)
    relay.relay_once()  # still nothing: gives up on the batch
    assert publisher.resets == 1 and store.published == set()
    assert relay.drain(timeout_s=5) == 4
    assert [m.ref for m in publisher.sent] == [1, 2, 3, 4]
