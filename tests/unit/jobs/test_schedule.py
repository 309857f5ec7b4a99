"""Job scheduling: definitions, cron due logic at a fixed instant, order, runs and skips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest

from jobs.result import JobResult, NotEnoughData
from jobs.schedule import (
    JobDefinition,
    JobRun,
    ScheduleError,
    due_jobs,
    is_due,
    run_job,
    run_plan,
    topological_order,
    validate,
    with_upstream,
)
from souk.settings import Settings

HOURLY = "15 * * * *"
DAILY = "15 2 * * *"
NOW = datetime(2025, 3, 10, 11, 20, tzinfo=UTC)

CALLS: list[tuple[str, bool, date | None]] = []


# --- targets the test definitions name as "tests.unit.jobs.test_schedule:<function>" -------


def extract(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    CALLS.append(("extract", full, since))
    return JobResult("extract", rows_in=10, rows_out={"silver/x": 8, "silver/y": 2})


def transform(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    CALLS.append(("transform", full, since))
    return JobResult("transform", rows_in=8, rows_out={"gold/z": 3})


def boom(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    CALLS.append(("boom", full, since))
    raise RuntimeError("disk\nfull")


def not_a_result(settings: Settings, *, full: bool, since: date | None) -> Any:
    return {"rows": 3}


def interrupted(settings: Settings, *, full: bool, since: date | None) -> JobResult:
    raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def calls() -> Iterator[list[tuple[str, bool, date | None]]]:
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def job(
    name: str,
    *depends_on: str,
    schedule: str = HOURLY,
    target: str = "extract",
) -> JobDefinition:
    return JobDefinition(
        name=name,
        description=f"test job {name}",
        schedule=schedule,
        target=f"{__name__}:{target}",
        depends_on=depends_on,
    )


def succeeded(name: str, started: datetime) -> JobRun:
    return JobRun("r-" + name, name, "succeeded", started, started + timedelta(minutes=5))


def failed(name: str, started: datetime) -> JobRun:
    return JobRun("f-" + name, name, "failed", started, started + timedelta(minutes=1))


def names(definitions: list[JobDefinition]) -> list[str]:
    return [d.name for d in definitions]


class Clock:
    """A clock that moves one second per reading."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


# --- due logic ------------------------------------------------------------------------------


def test_an_hourly_job_is_due_once_its_cron_ticked_after_its_last_success() -> None:
    hourly = job("hourly")
    last = datetime(2025, 3, 10, 10, 15, 2, tzinfo=UTC)
    assert not is_due(hourly, last, datetime(2025, 3, 10, 11, 14, 59, tzinfo=UTC))
    assert is_due(hourly, last, datetime(2025, 3, 10, 11, 15, tzinfo=UTC))
    assert is_due(hourly, None, NOW)  # never run


def test_a_daily_job_waits_for_its_tick_and_naive_times_are_utc() -> None:
    daily = job("daily", schedule=DAILY)
    last = datetime(2025, 3, 9, 2, 15, 30, tzinfo=UTC)
    assert not is_due(daily, last, datetime(2025, 3, 10, 2, 14, tzinfo=UTC))
    assert is_due(daily, last, datetime(2025, 3, 10, 2, 15, tzinfo=UTC))
    assert not is_due(daily, datetime(2025, 3, 9, 2, 15, 30), datetime(2025, 3, 10, 2, 14))


def test_due_jobs_use_the_last_success_only_and_come_in_dependency_order() -> None:
    # Defined children first: the result must still put parents first.
    definitions = [
        job("report", "gold", schedule=DAILY),
        job("gold", "silver"),
        job("silver"),
        job("fresh"),
        job("retrying"),
    ]
    history = [
        succeeded("silver", datetime(2025, 3, 10, 10, 15, tzinfo=UTC)),  # ticked at 11:15
        succeeded("report", datetime(2025, 3, 10, 2, 15, tzinfo=UTC)),  # next tick tomorrow
        succeeded("fresh", datetime(2025, 3, 10, 11, 15, tzinfo=UTC)),  # next tick 12:15
        succeeded("retrying", datetime(2025, 3, 10, 10, 15, tzinfo=UTC)),
        failed("retrying", datetime(2025, 3, 10, 11, 15, tzinfo=UTC)),  # a failure: still due
        failed("fresh", datetime(2025, 3, 10, 11, 16, tzinfo=UTC)),  # older success counts
        succeeded("silver", datetime(2025, 3, 10, 9, 15, tzinfo=UTC)),  # older, ignored
    ]
    # gold never ran: due; report's upstream is due but report's own cron has not ticked.
    assert names(due_jobs(definitions, history, NOW)) == ["silver", "gold", "retrying"]
    fresh_failure_later = [*history, failed("fresh", datetime(2025, 3, 10, 11, 17, tzinfo=UTC))]
    assert "fresh" not in names(due_jobs(definitions, fresh_failure_later, NOW))
    tomorrow = datetime(2025, 3, 11, 2, 15, tzinfo=UTC)
    assert names(due_jobs(definitions, history, tomorrow)) == [
        "silver",
        "gold",
        "report",
        "fresh",
        "retrying",
    ]


def test_every_never_run_job_is_due_parents_first() -> None:
    definitions = [job("c", "b"), job("b", "a"), job("a"), job("d", schedule=DAILY)]
    assert names(due_jobs(definitions, [], NOW)) == ["a", "b", "c", "d"]


# --- definitions and order ------------------------------------------------------------------


def test_topological_order_puts_dependencies_first_and_keeps_definition_order() -> None:
    definitions = [
        job("report", "left", "right"),
        job("right", "root"),
        job("left", "root"),
        job("root"),
        job("solo"),
    ]
    assert names(topological_order(definitions)) == ["root", "left", "right", "report", "solo"]
    assert names(with_upstream(definitions, "left")) == ["root", "left"]
    assert names(with_upstream(definitions, "report")) == ["root", "left", "right", "report"]
    with pytest.raises(ScheduleError, match="no job named 'nope'"):
        with_upstream(definitions, "nope")


def test_cycles_are_rejected_naming_the_cycle() -> None:
    definitions = [job("a", "c"), job("b", "a"), job("c", "b"), job("d")]
    with pytest.raises(ScheduleError, match=r"cycle: a -> c -> b -> a"):
        topological_order(definitions)
    with pytest.raises(ScheduleError, match="cycle"):
        due_jobs(definitions, [], NOW)


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([job("a", "ghost")], "a depends on unknown job"),
        ([job("a"), job("a")], "a is defined twice"),
    ],
)
def test_invalid_sets_of_definitions_are_rejected(
    definitions: list[JobDefinition], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate(definitions)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schedule": "every hour"}, "not a cron expression"),
        ({"target": "jobs.silver.run"}, "not module:function"),
        ({"name": "Silver-Job"}, "lowercase"),
        ({"depends_on": ("a",)}, "depends on itself"),
    ],
)
def test_invalid_definitions_are_rejected(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "name": "a",
        "description": "d",
        "schedule": HOURLY,
        "target": "jobs.silver:run",
    }
    with pytest.raises(ScheduleError, match=message):
        JobDefinition(**(fields | changes))


# --- running --------------------------------------------------------------------------------


def test_run_job_times_calls_and_records(settings: Settings, calls: list[Any]) -> None:
    recorded: list[JobRun] = []
    clock = Clock(NOW)
    run = run_job(
        job("extract"),
        settings,
        full=True,
        since=date(2025, 3, 1),
        record=recorded.append,
        clock=clock,
    )
    assert calls == [("extract", True, date(2025, 3, 1))]
    assert recorded == [run]
    assert run.status == "succeeded"
    assert (run.job, run.rows_in, dict(run.rows_out)) == (
        "extract",
        10,
        {"silver/x": 8, "silver/y": 2},
    )
    assert run.started_at == NOW + timedelta(seconds=1)
    assert run.ended_at == NOW + timedelta(seconds=2)
    assert run.duration_s == 1.0
    assert (run.since, run.full, run.error) == (date(2025, 3, 1), True, None)
    assert len(run.run_id) == 32


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("boom", "RuntimeError: disk full"),
        ("not_a_result", f"TypeError: {__name__}:not_a_result returned dict, not JobResult"),
        ("missing_function", f"target {__name__}:missing_function: {__name__} has no function"),
    ],
)
def test_a_failing_job_is_recorded_not_raised(settings: Settings, target: str, error: str) -> None:
    recorded: list[JobRun] = []
    run = run_job(job("j", target=target), settings, record=recorded.append)
    assert recorded == [run]
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith(error)
    assert "\n" not in run.error
    assert (run.rows_in, dict(run.rows_out)) == (0, {})


def test_a_missing_target_module_fails_with_a_clear_error(settings: Settings) -> None:
    definition = JobDefinition("ml", "d", HOURLY, "models.no_such_module:train")
    run = run_job(definition, settings)
    assert run.status == "failed"
    assert run.error == (
        "target models.no_such_module:train cannot be imported: "
        "No module named 'models.no_such_module'"
    )


def test_an_interrupted_job_is_recorded_then_the_interrupt_goes_on(settings: Settings) -> None:
    recorded: list[JobRun] = []
    with pytest.raises(KeyboardInterrupt):
        run_job(job("j", target="interrupted"), settings, record=recorded.append)
    assert [(r.status, r.error) for r in recorded] == [("failed", "interrupted")]


def test_a_failure_skips_everything_downstream_and_nothing_else(
    settings: Settings, calls: list[Any]
) -> None:
    definitions = [
        job("a", target="boom"),
        job("b", "a"),
        job("c", "b", target="transform"),
        job("d"),
        job("e", "d", target="transform"),
    ]
    recorded: list[JobRun] = []
    started: list[str] = []
    runs = run_plan(
        topological_order(definitions),
        settings,
        record=recorded.append,
        on_start=lambda d: started.append(d.name),
    )
    assert recorded == runs
    assert [(r.job, r.status) for r in runs] == [
        ("a", "failed"),
        ("b", "skipped"),
        ("c", "skipped"),
        ("d", "succeeded"),
        ("e", "succeeded"),
    ]
    assert [r.error for r in runs[1:3]] == ["upstream a failed", "upstream b skipped"]
    assert [name for name, _, _ in calls] == ["boom", "extract", "transform"]
    assert started == ["a", "b", "c", "d", "e"]


def test_a_dependency_outside_the_plan_does_not_block(settings: Settings) -> None:
    # gold's upstream silver is not due this pass: gold runs on silver's last output.
    runs = run_plan([job("gold", "silver", target="transform")], settings)
    assert [(r.job, r.status) for r in runs] == [("gold", "succeeded")]


def test_a_plan_out_of_dependency_order_is_refused(settings: Settings, calls: list[Any]) -> None:
    with pytest.raises(ScheduleError, match="runs b before its dependency a"):
        run_plan([job("b", "a"), job("a")], settings)
    assert calls == []


def test_a_history_outage_does_not_stop_the_pass(settings: Settings, calls: list[Any]) -> None:
    def broken_store(run: JobRun) -> None:
        raise OSError("lake unreachable")

    runs = run_plan([job("a"), job("b", "a", target="transform")], settings, record=broken_store)
    assert [(r.job, r.status) for r in runs] == [("a", "succeeded"), ("b", "succeeded")]
    assert [name for name, _, _ in calls] == ["extract", "transform"]


def _too_little(settings: object, *, full: bool, since: object) -> JobResult:
    raise NotEnoughData("3 labelled orders, need both classes")


def test_not_enough_data_is_a_skip_with_its_reason_and_skips_downstream() -> None:
    first = JobDefinition("first", "", "0 * * * *", f"{__name__}:_too_little")
    second = JobDefinition(
        "second", "", "0 * * * *", f"{__name__}:_too_little", depends_on=("first",)
    )
    runs = run_plan([first, second], cast(Any, None))
    assert [(r.job, r.status) for r in runs] == [("first", "skipped"), ("second", "skipped")]
    assert runs[0].error == "3 labelled orders, need both classes"
    assert runs[1].error == "upstream first skipped"
