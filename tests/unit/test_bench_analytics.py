"""The analytics bench's harness on a few hundred events: its generated events are valid
envelopes the loader accepts, and every figure it reports comes out of a real (chdb) run."""

from __future__ import annotations

from pathlib import Path

import msgspec
from rich.console import Console

from bench import analytics
from schemas.envelope import Envelope
from schemas.registry import REGISTRY


def test_generated_events_are_valid_and_unique() -> None:
    generator = analytics.Generator(108)
    messages = generator.chunk(0, 108)
    envelopes = [msgspec.json.decode(m.value, type=Envelope) for m in messages]
    for envelope in envelopes:
        REGISTRY.validate(envelope)  # raises on a payload that is not its schema
    assert len({e.event_id for e in envelopes}) == 108
    kinds = [e.event_type for e in envelopes]
    assert kinds.count("order.placed") == 2  # two blocks: five sessions of ten, one checks out
    assert kinds.count("product.viewed") == 60
    assert [e.occurred_at for e in envelopes] == sorted(e.occurred_at for e in envelopes)
    again = generator.chunk(54, 54)  # chunks line up with one long run
    assert [m.value for m in again] == [m.value for m in messages[54:]]


def test_a_small_run_reports_every_figure(tmp_path: Path) -> None:
    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)  # noqa: SIM115
    result = analytics.run(
        events=900,
        loader_events=300,
        kafka_events=0,
        query_runs=2,
        batch=100,
        console=console,
        home=tmp_path / "home",
    )
    analytics.report(result, console)
    console.file.close()
    assert result.events == 300 and result.copies == 3
    assert result.store_events == 900 == result.rows["events"]
    assert result.rows["raw_events"] == 900 and result.raw_per_s > 0
    assert result.loader_per_s > 0 and set(result.stage_s) == {
        "decode",
        "dedupe probe",
        "flatten + insert + commit",
    }
    assert set(result.queries_ms) == set(analytics.NAMES)
    assert all(q["p50"] <= q["p99"] for q in result.queries_ms.values())
    text = (tmp_path / "out.txt").read_text()
    assert "÷ raw insert" in text and "funnel" in text and "headline" in text
