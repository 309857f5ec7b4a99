"""The ledger on a pipelined unit of work: a booking queued as one statement, no round trip
of its own (the checkout's T2 sends it with its COMMIT)."""

from __future__ import annotations

from transactional.ledger.model import LedgerTransaction
from transactional.ledger.repository import APPEND, append_params
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, first, pyformat

_APPEND = pyformat(APPEND)


def _appended(row: tuple[object, ...] | None) -> int:
    return 0 if row is None else int(str(row[0]))


class PipelinedLedger:
    """Bookings, queued."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def append(self, tx: LedgerTransaction) -> Deferred[int]:
        """Queue a booking: 1 once synced, or 0 if its (kind, reference) was booked."""
        return self._uow.query(_APPEND, append_params(tx), lambda cursor: _appended(first(cursor)))
