"""The fraud scorer: signals + account + promoted model → score, decision and reasons."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from serving.fraud.model import (
    Account,
    Assessment,
    ScoreRequest,
    Thresholds,
    assess,
    check_request,
)
from serving.fraud.ports import Accounts, ModelSource, SignalStore
from transactional.shared.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

NO_ACCOUNT = Account(region=None, created_at=None)


class FraudScorer:
    """Scores a payment attempt (``POST /v1/fraud/score`` and the checkout's screen)."""

    def __init__(
        self,
        signals: SignalStore,
        models: ModelSource,
        accounts: Accounts,
        thresholds: Thresholds,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._signals = signals
        self._models = models
        self._accounts = accounts
        self.thresholds = thresholds
        self._clock = clock

    def score(self, request: ScoreRequest, thresholds: Thresholds | None = None) -> Assessment:
        """The assessment of ``request``; InvalidRequest (422) for nonsense input."""
        try:
            check_request(request)
        except ValueError as error:
            raise InvalidRequest(str(error), code="invalid_score_request") from None
        account = self._account(request)
        model = self._models.current()
        extra = tuple(model.feature_refs) if model is not None else ()
        signals = self._signals.read(request, extra)
        return assess(
            request, account, signals, model, thresholds or self.thresholds, self._clock()
        )

    def _account(self, request: ScoreRequest) -> Account:
        if request.account_region is not None and request.account_created_at is not None:
            return Account(request.account_region, request.account_created_at)
        known = self._accounts.account(request.customer_id)
        return Account(
            region=request.account_region or known.region,
            created_at=request.account_created_at or known.created_at,
        )


class CachedAccounts:
    """An :class:`Accounts` adapter over a lookup, with an LRU cache of the answers.

    An account's home region and creation time never change, so an answer is kept for the
    life of the process (bounded); an unknown account is not cached (it may register yet).
    """

    def __init__(
        self, lookup: Callable[[str], tuple[str, datetime] | None], *, size: int = 100_000
    ) -> None:
        self._lookup = lookup
        self._size = size
        self._cache: OrderedDict[str, Account] = OrderedDict()
        self._lock = threading.Lock()

    def account(self, customer_id: str) -> Account:
        """The account's region and creation time (None fields if unknown)."""
        with self._lock:
            cached = self._cache.get(customer_id)
            if cached is not None:
                self._cache.move_to_end(customer_id)
                return cached
        try:
            found = self._lookup(customer_id)
        except NotFound:
            found = None
        if found is None:
            return NO_ACCOUNT
        account = Account(region=found[0], created_at=found[1])
        with self._lock:
            self._cache[customer_id] = account
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return account


def with_account(request: ScoreRequest, account: Account) -> ScoreRequest:
    """``request`` with the account's facts filled in (the checkout knows them)."""
    return replace(
        request,
        account_region=request.account_region or account.region,
        account_created_at=request.account_created_at or account.created_at,
    )
