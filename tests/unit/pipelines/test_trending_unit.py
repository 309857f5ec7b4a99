"""The trending job's pure parts: Redis keys, the writer's commands, reads, SQL intervals."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.registry import job
from pipelines.trending import (
    ADVANCE_LATEST,
    JOB,
    LATEST_KEY,
    TRENDING_TOPIC,
    TrendingWriter,
    _interval,
    category_scope,
    pane_s,
    region_category_scope,
    region_scope,
    sink_topics,
    top,
    window_key,
    window_top,
)
from souk.settings import Settings


def test_scopes_and_keys() -> None:
    assert region_scope("eu") == "region:eu"
    assert category_scope("cat_books") == "category:cat_books"
    assert region_category_scope("eu", "cat_books") == "region:eu:category:cat_books"
    assert window_key("region:eu", 1_700_000_040_000) == (
        "souk:rt:trending:region:eu:1700000040000"
    )
    assert LATEST_KEY == "souk:rt:trending:latest"


@pytest.mark.parametrize("kind", ["+I", "+U"])
def test_writer_sets_the_score_and_moves_the_pointer(kind: str) -> None:
    commands = TrendingWriter(7200)(kind, ("all", 1_700_000_040_000, "prd-1", 12))
    key = "souk:rt:trending:all:1700000040000"
    assert commands == (
        ("ZADD", key, 12, "prd-1"),  # the value from state, never an increment
        ("EXPIRE", key, 7200),
        ("EVAL", ADVANCE_LATEST, 1, LATEST_KEY, "all", 1_700_000_040_000),
    )


@pytest.mark.parametrize("kind", ["-U", "-D"])
def test_writer_removes_a_retracted_product(kind: str) -> None:
    commands = TrendingWriter(7200)(kind, ("region:eu", 1_700_000_040_000, "prd-1", 12))
    assert commands == (("ZREM", "souk:rt:trending:region:eu:1700000040000", "prd-1"),)


def test_writer_is_picklable() -> None:
    import pickle

    writer = pickle.loads(pickle.dumps(TrendingWriter(60)))
    assert writer("+I", ("all", 60_000, "p", 1))[1] == ("EXPIRE", "souk:rt:trending:all:60000", 60)


class FakeRedis:
    """The two reads top() makes, over dicts (bytes, as a non-decoding client returns)."""

    def __init__(self, latest: dict[str, int], sets: dict[str, dict[str, float]]) -> None:
        self.latest = latest
        self.sets = sets

    def hget(self, key: str, field: str) -> bytes | None:
        assert key == LATEST_KEY
        value = self.latest.get(field)
        return None if value is None else str(value).encode()

    def zrange(self, key: str, start: int, end: int, withscores: bool) -> list[Any]:
        assert (start, end, withscores) == (0, -1, True)
        return [(member.encode(), score) for member, score in self.sets.get(key, {}).items()]


def test_top_reads_the_latest_window_best_first_ties_by_id() -> None:
    client = FakeRedis(
        {"all": 120_000},
        {
            window_key("all", 60_000): {"old": 99.0},
            window_key("all", 120_000): {"b": 5.0, "c": 3.0, "a": 5.0, "d": 8.0},
        },
    )
    assert top(client, "all", 3) == [("d", 8), ("a", 5), ("b", 5)]
    assert top(client, "all", 0) == []
    assert top(client, "region:eu", 3) == []  # nothing written for it yet
    assert window_top(client, "all", 60_000, 5) == [("old", 99)]


@pytest.mark.parametrize(
    ("seconds", "literal"),
    [
        (60, "INTERVAL '0 00:01:00.000' DAY TO SECOND(3)"),
        (3600, "INTERVAL '0 01:00:00.000' DAY TO SECOND(3)"),
        (2.5, "INTERVAL '0 00:00:02.500' DAY TO SECOND(3)"),
        (90061.25, "INTERVAL '1 01:01:01.250' DAY TO SECOND(3)"),
    ],
)
def test_intervals_of_any_size(seconds: float, literal: str) -> None:
    assert _interval(seconds) == literal


def test_job_declaration() -> None:
    assert job("trending") is JOB
    assert JOB.source_domains == ("behaviour", "carts", "orders", "catalog")
    assert TRENDING_TOPIC in JOB.read_models
    day = Settings(_env_file=None)  # type: ignore[call-arg]
    assert sink_topics(day) == {
        TRENDING_TOPIC: {"cleanup.policy": "compact,delete", "retention.ms": "86400000"}
    }
    week = day.model_copy(update={"trending_window_s": 7 * 86_400})
    assert sink_topics(week)[TRENDING_TOPIC]["retention.ms"] == str(14 * 86_400_000)


@pytest.mark.parametrize(
    ("window_s", "slide_s", "pane"), [(3600, 60, 60), (60, 30, 30), (90, 60, 30), (7, 7, 7)]
)
def test_the_pane_tiles_window_and_slide(window_s: int, slide_s: int, pane: int) -> None:
    assert pane_s(window_s, slide_s) == pane
    assert window_s % pane == 0 and slide_s % pane == 0
