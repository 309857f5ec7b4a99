"""Retention: published outbox rows and inbox ids are forgotten only once they are old."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from souk.stack.endpoints import Endpoints
from transactional.shared.inbox import PostgresInbox
from transactional.shared.outbox_store import PostgresOutboxStore

pytestmark = pytest.mark.integration


def test_inbox_purge_keeps_recent_ids(engine: Engine, region: str) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO inbox (consumer, event_id, event_type, processed_at) VALUES "
                "(:c, :old, 't', now() - interval '8 days'), (:c, :recent, 't', now())"
            ),
            {"c": region, "old": old, "recent": recent},
        )
    assert PostgresInbox(engine).purge(7 * 24 * 3600) >= 1
    with engine.connect() as connection:
        left = (
            connection.execute(
                text("SELECT event_id FROM inbox WHERE consumer = :c"), {"c": region}
            )
            .scalars()
            .all()
        )
    assert left == [recent]


def test_outbox_purge_keeps_unpublished_and_recent_rows(
    endpoints: Endpoints, engine: Engine, region: str
) -> None:
    rows = {"old": uuid.uuid4(), "recent": uuid.uuid4(), "pending": uuid.uuid4()}
    with engine.begin() as connection:
        # "old" was written 8 days ago and republished just now: its age counts from the write,
        # so a republish never stretches it past the consumers' inbox retention.
        connection.execute(
            text(
                "INSERT INTO outbox (event_id, event_type, topic, message_key, value, "
                "created_at, published_at) VALUES "
                "(:old, 't', :topic, 'k', '', now() - interval '8 days', now()),"
                "(:recent, 't', :topic, 'k', '', now(), now()),"
                "(:pending, 't', :topic, 'k', '', now() - interval '8 days', NULL)"
            ),
            {**rows, "topic": f"{region}.retention.v1"},
        )
    store = PostgresOutboxStore(endpoints.database_url)
    try:
        assert store.purge_published(7 * 24 * 3600) >= 1
    finally:
        store.close()
    with engine.begin() as connection:
        left = set(
            connection.execute(
                text("SELECT event_id FROM outbox WHERE topic = :t"),
                {"t": f"{region}.retention.v1"},
            ).scalars()
        )
        connection.execute(  # its topic does not exist: keep it from the relay
            text("DELETE FROM outbox WHERE topic = :t"), {"t": f"{region}.retention.v1"}
        )
    assert left == {rows["recent"], rows["pending"]}
