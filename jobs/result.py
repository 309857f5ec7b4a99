"""What one batch job did: rows read and rows written per table (for logs, tests and schedulers)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobResult:
    """One run of a batch job: its name, rows read from its sources, rows written per table."""

    name: str
    rows_in: int
    rows_out: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the job's log: ``silver: 120 rows in; silver/events 118, ...``."""
        written = ", ".join(f"{table} {rows}" for table, rows in sorted(self.rows_out.items()))
        return f"{self.name}: {self.rows_in} rows in; {written or 'nothing written'}"


class NotEnoughData(Exception):
    """The job's inputs hold too little to produce anything yet; the run is recorded as
    skipped with this reason (its downstream jobs are skipped too), not as a failure."""
