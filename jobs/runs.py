"""The run history of the batch jobs: the lake table ``ops/job_runs``, one row per run.

Written through the table-store port (delta-rs locally, the same table on a cluster), so
`souk jobs history`, the scheduler and Airflow-launched runs all read one history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from jobs.lake.port import TableStore
from jobs.schedule import STATUSES, JobRun, Status

if TYPE_CHECKING:
    from souk.settings import Settings

JOB_RUNS_TABLE = "ops/job_runs"

JOB_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("job", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # succeeded | failed | skipped
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ended_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rows_in", pa.int64(), nullable=False),
        pa.field("rows_out", pa.string(), nullable=False),  # JSON: {table: rows}
        pa.field("error", pa.string()),
        pa.field("since", pa.date32()),
        pa.field("full", pa.bool_(), nullable=False),
    ]
)

# One append is one small file: compact now and then so reading the history stays cheap.
COMPACT_EVERY = 100


class RunHistory:
    """Append and read job runs in ``ops/job_runs``."""

    def __init__(self, store: TableStore, table: str = JOB_RUNS_TABLE) -> None:
        self.store = store
        self.table = table

    def record(self, run: JobRun) -> None:
        """Append one run."""
        version = self.store.append(self.table, to_arrow([run]))
        if version > 0 and version % COMPACT_EVERY == 0:
            self.store.compact(self.table)

    def runs(self, job: str | None = None, limit: int | None = None) -> list[JobRun]:
        """Recorded runs (of ``job`` only, when given), newest first."""
        if not self.store.exists(self.table):
            return []
        runs = from_arrow(self.store.read(self.table))
        if job is not None:
            runs = [run for run in runs if run.job == job]
        runs.sort(key=lambda run: (run.started_at, run.ended_at), reverse=True)
        return runs if limit is None else runs[:limit]

    def latest(self) -> dict[str, JobRun]:
        """Each job's most recent run."""
        latest: dict[str, JobRun] = {}
        for run in self.runs():  # newest first: the first one seen per job wins
            latest.setdefault(run.job, run)
        return latest


def run_history(settings: Settings) -> RunHistory:
    """The run history in the configured lake."""
    from jobs.lake import table_store

    return RunHistory(table_store(settings))


def to_arrow(runs: list[JobRun]) -> pa.Table:
    """Runs as rows of ``JOB_RUNS_SCHEMA``."""
    return pa.Table.from_pylist(
        [
            {
                "run_id": run.run_id,
                "job": run.job,
                "status": run.status,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "rows_in": run.rows_in,
                "rows_out": json.dumps(dict(run.rows_out), sort_keys=True),
                "error": run.error,
                "since": run.since,
                "full": run.full,
            }
            for run in runs
        ],
        schema=JOB_RUNS_SCHEMA,
    )


def from_arrow(table: pa.Table) -> list[JobRun]:
    """Rows of ``JOB_RUNS_SCHEMA`` as runs."""
    return [_run(row) for row in table.select(JOB_RUNS_SCHEMA.names).to_pylist()]


def _run(row: Mapping[str, Any]) -> JobRun:
    status = row["status"]
    if status not in STATUSES:
        raise ValueError(f"{JOB_RUNS_TABLE}: run {row['run_id']} has unknown status {status!r}")
    since: date | None = row["since"]
    return JobRun(
        run_id=row["run_id"],
        job=row["job"],
        status=cast(Status, status),
        started_at=_aware(row["started_at"]),
        ended_at=_aware(row["ended_at"]),
        rows_in=int(row["rows_in"]),
        rows_out={str(k): int(v) for k, v in json.loads(row["rows_out"]).items()},
        error=row["error"],
        since=since,
        full=bool(row["full"]),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
