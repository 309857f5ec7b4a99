"""The loader's batch path on real chdb (no Kafka): records rejected one at a time, the Arrow
batches matching the DDL, and two consumer groups on one store leaving each other's rows alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.flatten import Source, decode, tables
from jobs.analytics.loader import RUN_SPAN, BatchWriter, discard_uncommitted, prepare
from jobs.analytics.schema import arrow_schema
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from tests.unit.analytics import scenario

EVENTS = scenario.build()


def _records(events: list[Envelope], start: int = 0) -> list[tuple[bytes, Source]]:
    return [
        (
            msgspec.json.encode(e),
            Source(topic_for(REGISTRY.spec(e.event_type).domain, e.region), 0, start + i),
        )
        for i, e in enumerate(events)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    """An empty store with the tables."""
    store = ChdbStore(tmp_path / "chdb")
    prepare(store, Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    yield store
    store.close()


def _count(store: ChdbStore, sql: str) -> int:
    return int(store.arrow(sql).to_pylist()[0]["n"])


def test_bad_records_are_rejected_alone_and_the_rest_load() -> None:
    good = _records(EVENTS[:5])
    envelope = msgspec.json.decode(good[0][0])
    cart = next(e for e in EVENTS if e.event_type == "cart.item_added")
    no_cart_id = msgspec.json.decode(msgspec.json.encode(cart))
    del no_cart_id["payload"]["cart_id"]
    bad = [
        b"not json",
        msgspec.json.encode({**envelope, "event_id": "not-a-uuid"}),
        msgspec.json.encode({**envelope, "occurred_at": "2026-12-01T09:00:00"}),  # no zone
        msgspec.json.encode({**envelope, "region": "EU"}),
        msgspec.json.encode(no_cart_id),  # its typed table needs it
    ]
    upper = msgspec.json.encode({**envelope, "event_id": envelope["event_id"].upper()})
    records = good + [(value, Source("t", 1, i)) for i, value in enumerate([*bad, upper])]
    batch = decode(records)
    why = {s.offset: reason for s, reason in batch.rejected}
    assert sorted(why) == [0, 1, 2, 3, 4]
    assert "UUID" in why[1] and "zone" in why[2] and "cart_id" in why[4]
    assert len(batch) == 6 and batch.event_ids[-1] == envelope["event_id"]  # canonical again
    assert len(batch.occurred) == len(batch.sources) == len(batch.wires) == 6
    only_ids = decode([*good, (bad[1], Source("t", 1, 9))])  # timestamps fine, one id not
    assert [s.offset for s, _ in only_ids.rejected] == [9]
    assert len(only_ids.occurred) == len(only_ids.event_ids) == len(only_ids) == 5


def test_arrow_batches_have_the_ddl_schema() -> None:
    from datetime import UTC, datetime

    built = tables(decode(_records(EVENTS)), datetime.now(UTC), 7 * RUN_SPAN + 1)
    assert set(built) == {
        "events",
        "behaviour",
        "cart_events",
        "checkouts",
        "orders",
        "order_lines",
        "order_events",
        "payments",
        "customers",
        "products",
        "fraud_alerts",
    }
    for name, table in built.items():
        assert table.schema == arrow_schema(name), name
    assert built["events"].num_rows == len(EVENTS)
    assert built["order_lines"].num_rows == 6


def test_a_second_group_never_discards_the_first_groups_rows(store: ChdbStore) -> None:
    first, second = _records(EVENTS[:30]), _records(EVENTS[30:], 30)
    a = BatchWriter(store, "group-a")
    a.write(a.new_events(decode(first)), {(s.topic, 0): s.offset for _, s in first})
    # a crash between the data and the commit: rows of a's run with no offsets row
    a.write(a.new_events(decode(second)), {})
    partitions = {(s.topic, 0) for _, s in first + second}
    total = _count(store, "SELECT count() AS n FROM events")
    assert total == len(EVENTS)

    # another group joining the store leaves a's rows alone, committed or not
    assert discard_uncommitted(store, "group-b", partitions) == 0
    b = BatchWriter(store, "group-b")
    assert (
        b.write(b.new_events(decode(first + second)), {}) == 0
    )  # each event once per store: a loaded them
    assert _count(store, "SELECT count() AS n FROM events") == total

    # a itself, on restart, discards its uncommitted batch in every table
    typed = _count(store, "SELECT count() AS n FROM behaviour")
    assert discard_uncommitted(store, "group-a", partitions) > len(EVENTS) - 30
    assert _count(store, "SELECT count() AS n FROM events") == 30
    assert _count(store, "SELECT count() AS n FROM behaviour") < typed
    assert a.write(a.new_events(decode(first + second)), {}) == len(EVENTS) - 30  # again
    got = store.arrow("SELECT event_id FROM events").column("event_id").to_pylist()
    assert sorted(got) == sorted(str(e.event_id) for e in EVENTS)
    runs = store.arrow("SELECT group, run_id FROM loader_runs ORDER BY group").to_pylist()
    assert [r["group"] for r in runs] == ["group-a", "group-b"]
    ids = store.arrow("SELECT DISTINCT intDiv(batch_id, 2147483648) AS run FROM events")
    assert set(ids.column("run").to_pylist()) == {runs[0]["run_id"]}


def test_the_production_adapters_arrow_body_loads_the_same_tables(
    store: ChdbStore, tmp_path: Path
) -> None:
    """clickhouse-connect's ``insert_arrow`` sends ``INSERT INTO t (cols) FORMAT Arrow`` with
    this body: ClickHouse's Arrow input format (here chdb's) takes every table's batch."""
    from datetime import UTC, datetime

    from clickhouse_connect.driver.query import arrow_buffer

    built = tables(decode(_records(EVENTS)), datetime.now(UTC), 7 * RUN_SPAN + 1)
    for name, table in built.items():
        columns, body = arrow_buffer(table)
        assert list(columns) == table.column_names
        path = tmp_path / f"{name}.arrow"
        path.write_bytes(bytes(body))  # type: ignore[arg-type]
        names = ", ".join(f"`{c}`" for c in columns)
        store.execute(f"INSERT INTO {name} ({names}) SELECT {names} FROM file('{path}', 'Arrow')")
    direct = tables(decode(_records(EVENTS)), datetime.now(UTC), 8 * RUN_SPAN + 1)
    for name, table in direct.items():
        store.insert_arrow(name, table)
    for name in built:
        rows = store.arrow(
            f"SELECT * EXCEPT (batch_id{', loaded_at' if name == 'events' else ''}) FROM {name} "
            "ORDER BY ALL"
        ).to_pylist()
        assert rows and rows[::2] == rows[1::2], name  # each row twice: both paths agree
