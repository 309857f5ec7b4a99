"""The Redis sink's pure parts: rows → commands, and which buffer a row's commands go to."""

from __future__ import annotations

from typing import Any

from pyflink.common import Row, RowKind

from pipelines.common.sinks import RedisCommands, StatsWriter, buffer_of
from pipelines.inventory import write_region, write_warehouse
from pipelines.trending import TrendingWriter, window_key


def _row(kind: RowKind, *values: Any) -> Row:
    row = Row(*values)
    row.set_row_kind(kind)
    return row


def test_every_change_of_one_redis_key_goes_to_the_same_buffer() -> None:
    to_commands = RedisCommands(TrendingWriter(7200), 8)
    end = 1_700_000_040_000
    changes = [
        _row(RowKind.INSERT, "all", end, "p-1", 4),
        _row(RowKind.UPDATE_BEFORE, "all", end, "p-1", 4),
        _row(RowKind.UPDATE_AFTER, "all", end, "p-1", 9),
        _row(RowKind.DELETE, "all", end, "p-2", 1),
    ]
    out = [record for row in changes for record in to_commands.flat_map(row)]
    assert {buffer for buffer, _commands in out} == {buffer_of(out[0][1], 8)}
    assert [commands[0][0] for _buffer, commands in out] == ["ZADD", "ZREM", "ZADD", "ZREM"]
    assert all(commands[0][1] == window_key("all", end) for _buffer, commands in out)
    # another window's key may land elsewhere, but always in the same place
    other = list(to_commands.flat_map(_row(RowKind.INSERT, "all", end + 60_000, "p-1", 1)))
    again = list(to_commands.flat_map(_row(RowKind.INSERT, "all", end + 60_000, "p-3", 2)))
    assert other[0][0] == again[0][0]
    assert 0 <= other[0][0] < 8


def test_rows_without_commands_are_dropped() -> None:
    to_commands = RedisCommands(write_warehouse, 4)
    before = _row(RowKind.UPDATE_BEFORE, "SKU-1", "wh-1", "eu", 3, "2026-01-01T00:00:00.000Z")
    assert list(to_commands.flat_map(before)) == []
    after = _row(RowKind.UPDATE_AFTER, "SKU-1", "wh-1", "eu", 2, "2026-01-01T00:00:01.000Z")
    ((buffer, commands),) = to_commands.flat_map(after)
    assert commands == (
        ("HSET", "souk:rt:stock:SKU-1", "wh:wh-1", 2, "at:wh-1", "2026-01-01T00:00:01.000Z"),
    )
    # the region sum of the same SKU writes the same hash: the same buffer, so in order
    ((region_buffer, _),) = RedisCommands(write_region, 4).flat_map(
        _row(RowKind.INSERT, "SKU-1", "eu", 2)
    )
    assert region_buffer == buffer


def test_stats_rows_share_one_buffer() -> None:
    to_commands = RedisCommands(StatsWriter("trending"), 4)
    buffers = {
        buffer
        for source in ("views", "orders")
        for buffer, _ in to_commands.flat_map(_row(RowKind.INSERT, f"late_dropped:{source}", 3))
    }
    assert len(buffers) == 1
