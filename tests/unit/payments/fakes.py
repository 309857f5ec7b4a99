"""In-memory fakes of the payment slice's ports: the sandbox's store and the payment repository."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes import FakeUnitOfWork
from tests.unit.ledger.fakes import FakePaymentLedger
from transactional.payments.model import Card, Payment, Refund
from transactional.payments.sandbox import Charge, StoredRequest, VaultEntry


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class MemorySandboxSession:
    """Stages writes; the ledger applies them only when the session ends without error."""

    def prefetch(
        self, *, key: str | None = None, token: str | None = None, reference: str | None = None
    ) -> None:
        """Nothing to fetch ahead: every read is in memory."""

    def __init__(self, ledger: MemorySandboxLedger) -> None:
        self._ledger = ledger
        self.requests: dict[str, StoredRequest] = {}
        self.vault: dict[str, VaultEntry] = {}
        self.charges: dict[str, Charge] = {}

    def request(self, idempotency_key: str) -> StoredRequest | None:
        return self.requests.get(idempotency_key) or self._ledger.requests.get(idempotency_key)

    def save_request(self, request: StoredRequest) -> None:
        assert request.idempotency_key not in self._ledger.requests, "keys are written once"
        self.requests[request.idempotency_key] = request

    def vault_entry(self, token: str) -> VaultEntry | None:
        return self.vault.get(token) or self._ledger.cards.get(token)

    def save_vault_entry(self, entry: VaultEntry) -> None:
        self.vault[entry.token] = entry

    def claim_vault_entry(self, token: str, owner: str) -> str | None:
        entry = self.vault_entry(token)
        if entry is None:
            return None
        if entry.owner is None:
            entry = dataclasses.replace(entry, owner=owner)
            self.vault[token] = entry
        return entry.owner

    def charge(self, reference: str) -> Charge | None:
        return self.charges.get(reference) or self._ledger.charges.get(reference)

    def save_charge(self, charge: Charge) -> None:
        self.charges[charge.reference] = charge


class MemorySandboxLedger:
    """The sandbox's store in dictionaries; one session at a time, like the advisory lock."""

    def __init__(self) -> None:
        self.requests: dict[str, StoredRequest] = {}
        self.cards: dict[str, VaultEntry] = {}
        self.charges: dict[str, Charge] = {}
        self.sessions = 0
        self._lock = threading.RLock()

    def vault(self, entry: VaultEntry) -> None:
        with self._lock:
            self.cards[entry.token] = entry

    @contextmanager
    def session(self, lock_key: str) -> Iterator[MemorySandboxSession]:
        with self._lock:
            self.sessions += 1
            staged = MemorySandboxSession(self)
            yield staged
            self.requests.update(staged.requests)
            self.cards.update(staged.vault)
            self.charges.update(staged.charges)


class FakePaymentRepository:
    """Payments and refunds in dictionaries (copies in and out, like rows)."""

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, Refund] = {}

    def add(self, payment: Payment) -> bool:
        keys = {p.idempotency_key for p in self.payments.values()}
        if payment.payment_id in self.payments or payment.idempotency_key in keys:
            return False
        self.payments[payment.payment_id] = dataclasses.replace(payment)
        return True

    def get(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        payment = self.payments.get(payment_id)
        return None if payment is None else dataclasses.replace(payment)

    def save(self, payment: Payment) -> None:
        self.payments[payment.payment_id] = dataclasses.replace(payment)

    def add_refund(self, refund: Refund) -> bool:
        if refund.refund_id in self.refunds:
            return False
        self.refunds[refund.refund_id] = refund
        return True

    def refund_count(self, payment_id: str) -> int:
        return sum(1 for r in self.refunds.values() if r.payment_id == payment_id)


class FakePaymentsUnitOfWork(FakeUnitOfWork):
    """A fake transaction with the in-memory payment repository."""

    def __init__(self, ledger: FakePaymentLedger | None = None) -> None:
        super().__init__()
        self.payments = FakePaymentRepository()
        self.ledger = ledger or FakePaymentLedger()


def card(number: str = "4242424242424242", **changes: Any) -> Card:
    """A valid test card (expiring well after the fake clock's now)."""
    fields: dict[str, Any] = {
        "number": number,
        "exp_month": 12,
        "exp_year": 2030,
        "cvc": "123",
        "holder": "Ada Lovelace",
    }
    fields.update(changes)
    return Card(**fields)
