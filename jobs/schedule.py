"""Batch job scheduling: definitions (cron, inputs, outputs, dependencies), what is due, runs.

A job is a ``JobDefinition`` whose ``target`` names its callable as ``"module:function"``;
the callable is imported only when the job runs, so definitions cost nothing to load (no
Spark, no model libraries) and a target that does not exist yet fails that run only.

Due logic (``due_jobs``): a job is due when its cron has ticked after the start of its last
successful run, or when it never succeeded. Each job's own cron decides whether it is due;
dependencies decide the order: due jobs run upstream first. Crons are evaluated in UTC.

Running (``run_plan``): each job is timed and recorded as a ``JobRun`` (succeeded or failed,
with the error text); a job whose upstream failed or was skipped in the same pass is not
started and is recorded as skipped. Nothing a job raises stops the pass.
"""

from __future__ import annotations

import importlib
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from croniter import croniter

from jobs.result import JobResult, NotEnoughData

if TYPE_CHECKING:
    from souk.settings import Settings

_LOG = logging.getLogger("souk.jobs.schedule")

Status = Literal["succeeded", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("succeeded", "failed", "skipped")

# Job names become Airflow task ids and CLI arguments: keep them plain identifiers.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class ScheduleError(ValueError):
    """Invalid job definitions (bad cron or target, unknown dependency, cycle) or job name."""


class TargetError(ScheduleError):
    """A job's target cannot be imported or is not callable."""


@dataclass(frozen=True)
class JobDefinition:
    """One batch job: when it runs, what it reads and writes, what must run before it."""

    name: str
    description: str
    schedule: str  # a cron expression, evaluated in UTC
    target: str  # "module:function" taking (settings, *, full, since) -> JobResult
    inputs: tuple[str, ...] = ()  # lake tables (or layer globs such as "bronze/*")
    outputs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    spark: bool = False  # needs Spark: Airflow launches it through spark-submit

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ScheduleError(
                f"job name {self.name!r} must be lowercase letters, digits and underscores"
            )
        if not croniter.is_valid(self.schedule):
            raise ScheduleError(f"job {self.name}: {self.schedule!r} is not a cron expression")
        if not _TARGET.fullmatch(self.target):
            raise ScheduleError(f"job {self.name}: target {self.target!r} is not module:function")
        if self.name in self.depends_on:
            raise ScheduleError(f"job {self.name} depends on itself")


@dataclass(frozen=True)
class JobRun:
    """One recorded run of a job (a skipped one included)."""

    run_id: str
    job: str
    status: Status
    started_at: datetime
    ended_at: datetime
    rows_in: int = 0
    rows_out: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    since: date | None = None
    full: bool = False

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds the run took."""
        return (self.ended_at - self.started_at).total_seconds()


def validate(definitions: Iterable[JobDefinition]) -> dict[str, JobDefinition]:
    """The definitions by name; raise ``ScheduleError`` on duplicates, unknown deps, cycles."""
    by_name: dict[str, JobDefinition] = {}
    for definition in definitions:
        if definition.name in by_name:
            raise ScheduleError(f"job {definition.name} is defined twice")
        by_name[definition.name] = definition
    for definition in by_name.values():
        unknown = [dep for dep in definition.depends_on if dep not in by_name]
        if unknown:
            raise ScheduleError(
                f"job {definition.name} depends on unknown job(s): {', '.join(unknown)}"
            )
    _order(by_name)  # raises on a cycle
    return by_name


def topological_order(definitions: Iterable[JobDefinition]) -> list[JobDefinition]:
    """Every job after all of its dependencies (ties keep definition order)."""
    by_name = validate(definitions)
    return [by_name[name] for name in _order(by_name)]


def _order(by_name: Mapping[str, JobDefinition]) -> list[str]:
    # Depth-first, visiting in definition order, so the result is deterministic.
    done: set[str] = set()
    path: list[str] = []
    order: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise ScheduleError(f"job dependencies form a cycle: {' -> '.join(cycle)}")
        path.append(name)
        for dep in by_name[name].depends_on:
            visit(dep)
        path.pop()
        done.add(name)
        order.append(name)

    for name in by_name:
        visit(name)
    return order


def job(definitions: Iterable[JobDefinition], name: str) -> JobDefinition:
    """The definition named ``name``; ``ScheduleError`` listing the known ones otherwise."""
    by_name = validate(definitions)
    if name not in by_name:
        raise ScheduleError(f"no job named {name!r} (jobs: {', '.join(by_name)})")
    return by_name[name]


def with_upstream(definitions: Iterable[JobDefinition], name: str) -> list[JobDefinition]:
    """``name`` and everything it depends on (transitively), in dependency order."""
    ordered = topological_order(definitions)
    by_name = {d.name: d for d in ordered}
    if name not in by_name:
        raise ScheduleError(f"no job named {name!r} (jobs: {', '.join(by_name)})")
    wanted = {name}
    for definition in reversed(ordered):  # dependents come later: walk back from the job
        if definition.name in wanted:
            wanted.update(definition.depends_on)
    return [d for d in ordered if d.name in wanted]


def last_successes(history: Iterable[JobRun]) -> dict[str, datetime]:
    """Per job, the start of its latest successful run."""
    latest: dict[str, datetime] = {}
    for run in history:
        if run.status == "succeeded" and (
            run.job not in latest or run.started_at > latest[run.job]
        ):
            latest[run.job] = run.started_at
    return latest


def next_tick(definition: JobDefinition, after: datetime) -> datetime:
    """The first tick of the job's cron strictly after ``after`` (UTC)."""
    tick: datetime = croniter(definition.schedule, _utc(after)).get_next(datetime)
    return tick


def is_due(definition: JobDefinition, last_success: datetime | None, now: datetime) -> bool:
    """True if the job never succeeded or its cron ticked after its last success started."""
    return last_success is None or next_tick(definition, last_success) <= _utc(now)


def due_jobs(
    definitions: Iterable[JobDefinition], history: Iterable[JobRun], now: datetime
) -> list[JobDefinition]:
    """The jobs due at ``now`` given the run ``history``, in dependency order."""
    successes = last_successes(history)
    return [d for d in topological_order(definitions) if is_due(d, successes.get(d.name), now)]


def resolve_target(target: str) -> Callable[..., Any]:
    """Import the callable a ``"module:function"`` target names."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TargetError(f"target {target} cannot be imported: {error}") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TargetError(f"target {target}: {module_name} has no function {attribute}")
    return function  # type: ignore[no-any-return]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    plain = isinstance(error, (TargetError, NotEnoughData))  # their messages say it all
    return text if plain else f"{type(error).__name__}: {text}"


Recorder = Callable[[JobRun], None]


def run_job(
    definition: JobDefinition,
    settings: Settings,
    *,
    full: bool = False,
    since: date | None = None,
    record: Recorder | None = None,
    clock: Callable[[], datetime] = _now,
) -> JobRun:
    """Run one job now: import its target, call it, record the run; never raise its errors."""
    started = clock()
    status: Status = "failed"
    result: JobResult | None = None
    error: str | None = None
    try:
        outcome = resolve_target(definition.target)(settings, full=full, since=since)
        if not isinstance(outcome, JobResult):
            raise TypeError(f"{definition.target} returned {type(outcome).__name__}, not JobResult")
        result, status = outcome, "succeeded"
    except NotEnoughData as exc:  # too little data yet: nothing to do, nothing broken
        _LOG.info("job %s skipped: %s", definition.name, exc)
        status, error = "skipped", _one_line(exc)
    except KeyboardInterrupt:
        # Ctrl-C: keep the history truthful (the run did not finish), then stop.
        _record(
            record, _run(definition, "failed", started, clock(), None, "interrupted", since, full)
        )
        raise
    except Exception as exc:  # the job's failure is the run's outcome, not the scheduler's
        if isinstance(exc, TargetError):  # the message says it all: no traceback
            _LOG.debug("job %s failed: %s", definition.name, exc)
        else:
            _LOG.warning("job %s failed", definition.name, exc_info=True)
        error = _one_line(exc)
    run = _run(definition, status, started, clock(), result, error, since, full)
    _record(record, run)
    return run


def _run(
    definition: JobDefinition,
    status: Status,
    started: datetime,
    ended: datetime,
    result: JobResult | None,
    error: str | None,
    since: date | None,
    full: bool,
) -> JobRun:
    return JobRun(
        run_id=_new_id(),
        job=definition.name,
        status=status,
        started_at=_utc(started),
        ended_at=_utc(ended),
        rows_in=result.rows_in if result else 0,
        rows_out=dict(result.rows_out) if result else {},
        error=error,
        since=since,
        full=full,
    )


def _record(record: Recorder | None, run: JobRun) -> None:
    if record is None:
        return
    try:
        record(run)
    except Exception:  # a history outage must not stop the jobs; the log keeps the run
        _LOG.exception("could not record run %s of job %s (%s)", run.run_id, run.job, run.status)


def run_plan(
    plan: Sequence[JobDefinition],
    settings: Settings,
    *,
    full: bool = False,
    since: date | None = None,
    record: Recorder | None = None,
    clock: Callable[[], datetime] = _now,
    on_start: Callable[[JobDefinition], None] | None = None,
    on_end: Callable[[JobRun], None] | None = None,
) -> list[JobRun]:
    """Run ``plan`` (in dependency order) one job at a time; skip jobs whose upstream failed.

    Only upstream jobs that are part of the plan count: a dependency that is not due this
    pass keeps the data of its last successful run.
    """
    planned = {d.name for d in plan}
    if len(planned) != len(plan):
        raise ScheduleError("a plan lists a job twice")
    outcomes: dict[str, Status] = {}
    runs: list[JobRun] = []
    for definition in plan:
        misplaced = [d for d in definition.depends_on if d in planned and d not in outcomes]
        if misplaced:
            raise ScheduleError(
                f"plan runs {definition.name} before its dependency {', '.join(misplaced)}"
            )
        blocked = [d for d in definition.depends_on if outcomes.get(d, "succeeded") != "succeeded"]
        if on_start is not None:
            on_start(definition)
        if blocked:
            moment = clock()
            reason = ", ".join(f"{name} {outcomes[name]}" for name in blocked)
            run = _run(
                definition, "skipped", moment, moment, None, f"upstream {reason}", since, full
            )
            _record(record, run)
        else:
            run = run_job(definition, settings, full=full, since=since, record=record, clock=clock)
        outcomes[definition.name] = run.status
        runs.append(run)
        if on_end is not None:
            on_end(run)
    return runs
