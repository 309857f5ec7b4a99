"""The outbox commits or rolls back together with the domain change."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, UnknownEventType
from schemas.ids import uuid7
from schemas.registry import REGISTRY
from transactional.shared.outbox import Outbox

pytestmark = pytest.mark.integration


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


@pytest.fixture
def domain_table(engine: Engine) -> str:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS outbox_test_change (id text)"))
    return "outbox_test_change"


def bad_envelope(region: str, **changes: object) -> Envelope:
    fields: dict[str, object] = {
        "event_id": uuid7(),
        "event_type": "stock.adjusted",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC),
        "aggregate_type": "stock",
        "aggregate_id": "s",
        "region": region,
        "payload": {"sku": "s", "warehouse_id": "w", "delta": "lots", "on_hand_after": 1},
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({}, InvalidPayload, "delta"),
        ({"event_type": "stock.adjustd"}, UnknownEventType, "stock.adjusted"),
    ],
)
def test_invalid_event_rolls_back_the_domain_change(
    engine: Engine,
    domain_table: str,
    region: str,
    changes: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    before = count(engine, "SELECT count(*) FROM outbox")
    with pytest.raises(error, match=message), engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {domain_table} VALUES (:id)"), {"id": region})
        Outbox(regions=[region]).add(connection, [bad_envelope(region, **changes)])
    assert count(engine, f"SELECT count(*) FROM {domain_table} WHERE id = :id", id=region) == 0
    assert count(engine, "SELECT count(*) FROM outbox") == before


def test_valid_events_commit_with_the_change(
    engine: Engine, domain_table: str, region: str
) -> None:
    event = REGISTRY.new_event(
        "stock.adjusted",
        {"sku": "s", "warehouse_id": "w", "delta": 3, "on_hand_after": 3},
        aggregate_id="s",
        region=region,
    )
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {domain_table} VALUES (:id)"), {"id": region})
        Outbox(regions=[region]).add(connection, [event])
    assert count(engine, "SELECT count(*) FROM outbox WHERE event_id = :e", e=event.event_id) == 1
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT topic, message_key, headers->>'event_type' AS header_type FROM outbox "
                "WHERE event_id = :e"
            ),
            {"e": event.event_id},
        ).one()
    assert (row.topic, row.message_key, row.header_type) == (
        f"{region}.inventory.v1",
        "s",
        "stock.adjusted",
    )
    with engine.begin() as connection:  # its topic does not exist: keep it from the relay
        connection.execute(text("DELETE FROM outbox WHERE event_id = :e"), {"e": event.event_id})


def test_outbox_ids_follow_the_order_in_which_writers_held_the_aggregate(
    engine: Engine, region: str
) -> None:
    """No domain row lock here: only the outbox's own per-aggregate lock orders the writers."""
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS outbox_test_order (seq bigserial, event_id uuid)")
        )
    outbox = Outbox(regions=[region])

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(40):
            event = REGISTRY.new_event(
                "product.viewed",
                {"session_id": "ses-1", "product_id": f"prd-{seed}-{n}"},
                region=region,
            )
            with engine.begin() as connection:
                outbox.add(connection, [event])
                time.sleep(rng.random() * 0.002)  # widen the race a missing lock would lose
                connection.execute(
                    text("INSERT INTO outbox_test_order (event_id) VALUES (:e)"),
                    {"e": event.event_id},
                )

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with engine.begin() as connection:
        ids = (
            connection.execute(
                text(
                    "SELECT o.id FROM outbox_test_order t JOIN outbox o USING (event_id) "
                    "WHERE o.topic = :topic ORDER BY t.seq"
                ),
                {"topic": f"{region}.behaviour.v1"},
            )
            .scalars()
            .all()
        )
        connection.execute(
            text("DELETE FROM outbox WHERE topic = :t"), {"t": f"{region}.behaviour.v1"}
        )
    assert len(ids) == 320
    assert ids == sorted(ids), "outbox ids do not follow the order writers held the aggregate"
