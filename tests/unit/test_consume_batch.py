"""consume_batch: fill a batch within a wait, skip retriable errors, stop on a fatal one."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from confluent_kafka import KafkaError

from transactional.shared.kafka import consume_batch


class Record:
    """A consumed record: a value or an error."""

    def __init__(self, value: bytes = b"", error: KafkaError | None = None) -> None:
        self._value, self._error = value, error

    def error(self) -> KafkaError | None:
        return self._error

    def value(self) -> bytes:
        return self._value


class Polls:
    """A consumer whose consume() calls answer from a script, then nothing."""

    def __init__(self, *answers: list[Record]) -> None:
        self.answers = deque(answers)
        self.asked: list[int] = []

    def consume(self, count: int, timeout: float) -> list[Any]:
        self.asked.append(count)
        return self.answers.popleft() if self.answers else []


def test_fills_up_to_the_maximum_across_polls_and_skips_retriable_errors() -> None:
    transient = KafkaError(KafkaError._TRANSPORT, "broker down", retriable=True)
    polls = Polls([Record(b"a"), Record(error=transient)], [Record(b"b"), Record(b"c")])
    batch = consume_batch(polls, max_records=3, wait_s=1.0, who="t")
    assert [r.value() for r in batch] == [b"a", b"b", b"c"]
    assert polls.asked == [3, 2]


def test_first_only_returns_what_the_first_poll_with_records_brought() -> None:
    polls = Polls([], [Record(b"a")], [Record(b"b")])
    batch = consume_batch(polls, max_records=10, wait_s=1.0, who="t", first_only=True)
    assert [r.value() for r in batch] == [b"a"]


def test_an_empty_topic_returns_nothing_once_the_wait_is_over() -> None:
    assert consume_batch(Polls(), max_records=10, wait_s=0.05, who="t") == []


def test_a_fatal_error_names_who_met_it() -> None:
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    with pytest.raises(RuntimeError, match="indexer: Kafka error"):
        consume_batch(Polls([Record(error=fatal)]), max_records=5, wait_s=1.0, who="indexer")
