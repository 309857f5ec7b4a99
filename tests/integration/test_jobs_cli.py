"""`souk jobs` on a real lake (delta-rs under tmp_path): runs, their history, the scheduler."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console
from typer.testing import CliRunner

from jobs.lake import table_store
from jobs.result import JobResult
from jobs.runs import JOB_RUNS_SCHEMA, JOB_RUNS_TABLE, RunHistory
from jobs.schedule import JobDefinition
from souk import jobs_cli
from souk.settings import Settings

pytestmark = pytest.mark.integration

YEARLY = "0 0 1 1 *"  # never ticks during a test: a job that succeeded stays not due


def extract(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    """Writes three rows to silver/things."""
    rows = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    table_store(settings).append("silver/things", rows)
    return JobResult("extract", rows_in=3, rows_out={"silver/things": 3})


def summarise(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    """Counts silver/things into gold/summary."""
    store = table_store(settings)
    things = store.read("silver/things")
    store.overwrite("gold/summary", pa.table({"things": [things.num_rows]}))
    return JobResult("summarise", rows_in=things.num_rows, rows_out={"gold/summary": 1})


DEFINITIONS = (
    JobDefinition("extract", "bronze → silver", YEARLY, f"{__name__}:extract"),
    JobDefinition(
        "summarise", "silver → gold", YEARLY, f"{__name__}:summarise", depends_on=("extract",)
    ),
    JobDefinition("broken", "a model not written yet", YEARLY, "tests.no_such_module:train"),
)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`souk jobs` on a private lake, with this module's job definitions."""
    settings = Settings(_env_file=None, home=tmp_path / "home")  # type: ignore[call-arg]
    monkeypatch.setattr(jobs_cli, "get_settings", lambda: settings)
    monkeypatch.setattr(jobs_cli, "load_definitions", lambda: DEFINITIONS)
    monkeypatch.setattr(jobs_cli, "console", Console(width=200))
    return settings


def souk(*args: str) -> Any:
    return CliRunner().invoke(jobs_cli.jobs_app, list(args))


def test_runs_are_recorded_and_listed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = souk("run", "summarise", "--with-deps")
    assert ran.exit_code == 0, ran.output
    assert re.search(r"extract: succeeded in [\d.]+ s, 3 rows in → silver/things 3", ran.stdout)
    assert re.search(r"summarise: succeeded in [\d.]+ s, 3 rows in → gold/summary 1", ran.stdout)
    assert table_store(settings).read("gold/summary").to_pylist() == [{"things": 3}]

    broken = souk("run", "broken")
    assert broken.exit_code == 1
    assert broken.stderr == (
        "error: broken failed: target tests.no_such_module:train cannot be imported: "
        "No module named 'tests.no_such_module'\n"
    )

    store = table_store(settings)
    assert store.read(JOB_RUNS_TABLE).schema == JOB_RUNS_SCHEMA
    runs = RunHistory(store).runs()
    assert [(r.job, r.status, r.rows_in, dict(r.rows_out)) for r in runs] == [
        ("broken", "failed", 0, {}),
        ("summarise", "succeeded", 3, {"gold/summary": 1}),
        ("extract", "succeeded", 3, {"silver/things": 3}),
    ]
    assert runs[0].error is not None and "No module named" in runs[0].error
    assert all(r.ended_at >= r.started_at for r in runs)

    history = souk("history")
    assert history.exit_code == 0, history.output
    lines = [line for line in history.stdout.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in line.split("│")[2:4]] for line in lines] == [
        ["broken", "failed"],
        ["summarise", "succeeded"],
        ["extract", "succeeded"],
    ]
    assert "gold/summary 1" in lines[1] and "silver/things 3" in lines[2]
    assert "No module named 'tests.no_such_module'" in lines[0]
    only = souk("history", "extract", "--limit", "5")
    assert only.exit_code == 0, only.output
    only_lines = [line for line in only.stdout.splitlines() if line.startswith("│")]
    assert [line.split("│")[2].strip() for line in only_lines] == ["extract"]

    # The scheduler: only the job that never succeeded is due (the yearly cron did not tick).
    monkeypatch.setattr(jobs_cli, "_now", lambda: runs[0].started_at + timedelta(seconds=1))
    not_due = souk("run", "extract", "--if-due")
    assert not_due.exit_code == jobs_cli.NOT_DUE_EXIT, not_due.output
    assert "extract: not due (next tick" in not_due.stdout
    scheduled = souk("schedule")
    assert scheduled.exit_code == 1, scheduled.output  # broken failed again
    assert ": due: broken\n" in scheduled.stdout
    assert "broken: failed" in scheduled.stdout
    assert [r.job for r in RunHistory(store).runs()] == ["broken", "broken", "summarise", "extract"]

    listed = souk("list")
    assert listed.exit_code == 0, listed.output
    rows = {
        cells[1].strip(): cells
        for line in listed.stdout.splitlines()
        if line.startswith("│") and len(cells := line.split("│")) > 6
    }
    assert set(rows) == {"extract", "summarise", "broken"}
    assert "succeeded" in rows["summarise"][5] and "due now" not in rows["summarise"][6]
    assert "failed" in rows["broken"][5] and "due now" in rows["broken"][6]
    assert rows["summarise"][3].strip() == "extract"


def test_unknown_jobs_and_bad_dates_are_one_line_errors(settings: Settings) -> None:
    unknown = souk("run", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: no job named 'nope' (jobs: extract, summarise, broken)\n"
    bad_date = souk("run", "extract", "--since", "yesterday")
    assert bad_date.exit_code == 1
    assert bad_date.stderr == "error: --since 'yesterday' is not a date (YYYY-MM-DD)\n"
    unknown_history = souk("history", "nope")
    assert unknown_history.exit_code == 1
    assert unknown_history.stderr.startswith("error: no job named 'nope'")
    empty = souk("history")
    assert empty.exit_code == 0 and "no runs recorded" in empty.stdout
