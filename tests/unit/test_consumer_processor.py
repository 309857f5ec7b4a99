"""Consumer delivery rules on fakes: once per event id, retries with backoff, dead letters."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import pytest

from schemas.envelope import Envelope
from schemas.registry import REGISTRY
from tests.fakes import FakeInbox, FakePublisher
from transactional.shared.errors import PublishFailed, StoreUnavailable
from transactional.shared.processor import IncomingMessage, MessageProcessor, Outcome


def user_registered(n: int = 1) -> Envelope:
    return REGISTRY.new_event(
        "user.registered",
        {
            "customer_id": f"cus_{n}",
            "region": "eu",
            "country": "DE",
            "locale": "de-DE",
        },
        aggregate_id=f"cus_{n}",
        region="eu",
    )


def incoming(envelope: Envelope, offset: int = 0) -> IncomingMessage:
    return IncomingMessage(
        topic="eu.customers.v1",
        partition=0,
        offset=offset,
        key=envelope.aggregate_id,
        value=REGISTRY.encode(envelope),
    )


def make(
    handler: Any, dlq: FakePublisher | None = None, attempts: int = 3
) -> tuple[MessageProcessor, FakeInbox, FakePublisher, list[float]]:
    sleeps: list[float] = []
    inbox, dead = FakeInbox(), dlq or FakePublisher()
    processor = MessageProcessor(
        "test-consumer",
        handler,
        inbox,
        dead,
        max_attempts=attempts,
        backoff_s=0.1,
        sleep=sleeps.append,
    )
    return processor, inbox, dead, sleeps


def test_applies_each_event_once() -> None:
    seen: list[str] = []
    processor, _inbox, _dead, _ = make(lambda env, payload, tx: seen.append(payload.customer_id))
    event = user_registered()
    assert processor.process(incoming(event)) is Outcome.APPLIED
    assert processor.process(incoming(event, offset=7)) is Outcome.DUPLICATE
    assert seen == ["cus_1"]
    assert processor.stats.applied == 1 and processor.stats.duplicates == 1


def test_handler_receives_the_typed_payload_and_the_transaction() -> None:
    received: list[Any] = []
    processor, inbox, _dead, _ = make(lambda env, payload, tx: received.extend([payload, tx]))
    processor.process(incoming(user_registered()))
    assert isinstance(received[0], msgspec.Struct)
    assert received[1] is inbox.connection


def test_transient_failure_is_retried_with_exponential_backoff() -> None:
    calls = {"n": 0}

    def flaky(env: Envelope, payload: Any, tx: Any) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("database restarting")

    processor, _inbox, dead, sleeps = make(flaky, attempts=5)
    assert processor.process(incoming(user_registered())) is Outcome.APPLIED
    assert sleeps == [0.1, 0.2]
    assert dead.sent == []


def test_poison_event_goes_to_the_dlq_with_the_error_after_n_tries() -> None:
    def broken(env: Envelope, payload: Any, tx: Any) -> None:
        raise ValueError("cannot ship to Atlantis")

    processor, inbox, dead, sleeps = make(broken, attempts=3)
    event = user_registered()
    assert processor.process(incoming(event, offset=42)) is Outcome.DEAD_LETTERED
    assert len(sleeps) == 2
    [letter] = dead.sent
    assert letter.topic == "eu.customers.v1.dlq"
    assert letter.key == event.aggregate_id
    assert letter.headers["dlq.error"] == "cannot ship to Atlantis"
    assert letter.headers["dlq.error_type"] == "ValueError"
    assert letter.headers["dlq.attempts"] == "3"
    assert letter.headers["dlq.original_offset"] == "42"
    assert inbox.applied == set()  # nothing half-applied
    # The next event still flows.
    ok, _, _, _ = make(lambda env, payload, tx: None)
    assert ok.process(incoming(user_registered(2))) is Outcome.APPLIED


def test_undecodable_message_is_dead_lettered_without_retries() -> None:
    processor, _inbox, dead, sleeps = make(lambda env, payload, tx: None)
    outcome = processor.process(
        IncomingMessage(topic="eu.orders.v1", partition=1, offset=3, key="k", value=b"{not json")
    )
    assert outcome is Outcome.DEAD_LETTERED and sleeps == []
    assert dead.sent[0].headers["dlq.attempts"] == "1"
    assert dead.sent[0].value == b"{not json"


def test_failing_dead_letter_publish_raises_so_the_offset_is_not_committed() -> None:
    def broken(env: Envelope, payload: Any, tx: Any) -> None:
        raise ValueError("boom")

    dlq = FakePublisher(fail=lambda _m: "broker down")
    processor, _inbox, _dead, _ = make(broken, dlq=dlq, attempts=1)
    with pytest.raises(PublishFailed, match="could not dead-letter"):
        processor.process(incoming(user_registered()))


def test_a_batch_applies_in_order_and_drops_redelivered_copies() -> None:
    seen: list[str] = []
    processor, _inbox, _dead, _ = make(lambda env, payload, tx: seen.append(payload.customer_id))
    events = [user_registered(n) for n in range(1, 5)]
    batch = [incoming(e, offset=i) for i, e in enumerate(events)] + [incoming(events[1], 9)]
    outcomes = processor.process_many(batch)
    assert outcomes == [Outcome.APPLIED] * 4 + [Outcome.DUPLICATE]
    assert seen == ["cus_1", "cus_2", "cus_3", "cus_4"]


def test_a_failing_batch_falls_back_to_one_at_a_time() -> None:
    applied: list[str] = []

    def handle(env: Envelope, payload: Any, tx: Any) -> None:
        if payload.customer_id == "cus_3":
            raise ValueError("poison")
        applied.append(payload.customer_id)

    processor, inbox, dead, _ = make(handle, attempts=2)
    events = [user_registered(n) for n in range(1, 6)]
    outcomes = processor.process_many([incoming(e, i) for i, e in enumerate(events)])
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.DEAD_LETTERED,
        Outcome.APPLIED,
        Outcome.APPLIED,
    ]
    assert {key[1] for key in inbox.applied} == {e.event_id for e in events} - {events[2].event_id}
    assert [m.headers["dlq.attempts"] for m in dead.sent] == ["2"]
    # Effects outside the transaction run again on the fallback pass: handlers keep effects in it.
    assert applied[-4:] == ["cus_1", "cus_2", "cus_4", "cus_5"]


def test_an_undecodable_message_in_a_batch_is_dead_lettered_alone() -> None:
    processor, _inbox, dead, _ = make(lambda env, payload, tx: None)
    good = [incoming(user_registered(n), n) for n in (1, 2)]
    bad = IncomingMessage(topic="eu.customers.v1", partition=0, offset=5, key="x", value=b"[]")
    outcomes = processor.process_many([good[0], bad, good[1]])
    assert outcomes == [Outcome.APPLIED, Outcome.DEAD_LETTERED, Outcome.APPLIED]
    assert len(dead.sent) == 1


def test_an_unreachable_store_is_waited_out_not_counted_as_an_attempt() -> None:
    class DownThenUp(FakeInbox):
        outages = 6

        def apply_once(self, consumer: str, envelope: Envelope, effect: Any) -> bool:
            if self.outages:
                self.outages -= 1
                raise StoreUnavailable("database restarting")
            return super().apply_once(consumer, envelope, effect)

    sleeps: list[float] = []
    processor = MessageProcessor(
        "c",
        lambda env, payload, tx: None,
        DownThenUp(),
        FakePublisher(),
        max_attempts=2,
        backoff_s=0.1,
        max_backoff_s=1.0,
        sleep=sleeps.append,
    )
    assert processor.process(incoming(user_registered())) is Outcome.APPLIED
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # more than max_attempts, capped backoff
    assert processor.stats.dead_lettered == 0


def test_stopping_interrupts_an_outage_wait_in_progress() -> None:
    class Down(FakeInbox):
        def apply_once(self, consumer: str, envelope: Envelope, effect: Any) -> bool:
            raise StoreUnavailable("database down")

    processor = MessageProcessor(
        "c", lambda e, p, t: None, Down(), FakePublisher(), backoff_s=60, max_backoff_s=60
    )
    raised: list[BaseException] = []

    def consume() -> None:
        try:
            processor.process(incoming(user_registered()))
        except StoreUnavailable as exc:
            raised.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)  # now inside a 60 s wait
    processor.stopping.set()
    thread.join(5)
    assert not thread.is_alive() and len(raised) == 1
    assert processor.stats.dead_lettered == 0
