"""The customer slice's reads for a pipelined unit of work (the checkout's hot path)."""

from __future__ import annotations

from psycopg import Cursor

from transactional.customers.model import Address
from transactional.customers.repository import ADDRESS_COLUMNS
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, Row, pyformat

_ADDRESS = pyformat(
    f"SELECT {ADDRESS_COLUMNS} FROM customer_addresses "
    "WHERE customer_id = :customer_id AND address_id = :address_id"
)
_NAMES = [name.strip() for name in ADDRESS_COLUMNS.split(",")]


def _address(cursor: Cursor[Row]) -> Address | None:
    row = cursor.fetchone()
    if row is None:
        return None
    fields = dict(zip(_NAMES, row, strict=True))
    fields["country"] = fields["country"].strip()
    return Address(**fields)


class PipelinedAddresses:
    """Saved addresses, queued on a pipelined unit of work."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def address(self, customer_id: str, address_id: str) -> Deferred[Address | None]:
        """One of the customer's saved addresses, or None."""
        return self._uow.query(
            _ADDRESS, {"customer_id": customer_id, "address_id": address_id}, _address
        )
