"""In-memory fakes of the ledger's ports: the journal and a payments bookkeeper over it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from transactional.ledger.bookings import Sale
from transactional.ledger.commission import CommissionRates
from transactional.ledger.model import LedgerTransaction, account_qualifier, account_type
from transactional.ledger.payments import PaymentBookkeeper


class FakeJournal:
    """The ledger in a dict keyed by (kind, reference), with balances kept as it appends."""

    def __init__(self) -> None:
        self.transactions: dict[tuple[str, str], LedgerTransaction] = {}
        self.stored_balances: dict[tuple[str, str], int] = defaultdict(int)

    def append(self, tx: LedgerTransaction) -> bool:
        key = (tx.kind, tx.reference)
        if key in self.transactions:
            return False
        self.transactions[key] = tx
        for posting in tx.postings:
            self.stored_balances[(posting.account, posting.currency)] += posting.amount_minor
        return True

    def find(self, kind: str, reference: str) -> LedgerTransaction | None:
        return self.transactions.get((kind, reference))

    def for_order(self, order_id: str) -> list[LedgerTransaction]:
        return [tx for tx in self.transactions.values() if tx.order_id == order_id]

    def balance(self, account: str, currency: str) -> int:
        return self.stored_balances.get((account, currency), 0)

    def balances(self, account_type_: str | None = None) -> dict[tuple[str, str], int]:
        return {
            key: value
            for key, value in self.stored_balances.items()
            if account_type_ is None or account_type(key[0]) == account_type_
        }

    def seller_payables(self) -> dict[tuple[str, str], int]:
        return {
            (account_qualifier(account) or "", currency): -value
            for (account, currency), value in self.balances("seller_payable").items()
            if value < 0
        }


class FakePaymentLedger(PaymentBookkeeper):
    """The real bookkeeping over a :class:`FakeJournal` and a dict of sales by order id."""

    def __init__(
        self,
        journal: FakeJournal | None = None,
        sales: Mapping[str, Sale] | None = None,
        rates: CommissionRates | None = None,
    ) -> None:
        self.fake_journal = journal or FakeJournal()
        self.sales = dict(sales or {})
        super().__init__(self.fake_journal, self.sales.get, rates or CommissionRates())
