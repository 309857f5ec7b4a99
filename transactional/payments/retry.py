"""Retries of transient gateway errors: a PaymentGateway that retries another one.

Only :class:`GatewayTimeout` is retried (the processor may or may not have acted): the call is
repeated with the same idempotency key, so a processor that did act replays its first answer
and nothing moves twice. Backoff is exponential with jitter (tenacity), bounded both in
attempts and in total time; after that the last GatewayTimeout goes to the caller, whose own
recovery (``lookup`` by the key) takes over. Refusals and declines are never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.nap import sleep as nap_sleep

from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayResult,
    GatewayTimeout,
    GatewayTransaction,
    PaymentGateway,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a timed-out gateway call is tried again."""

    attempts: int = 3  # calls in all, the first included
    initial_s: float = 0.05  # the first wait; each next one doubles (plus jitter)
    max_wait_s: float = 1.0  # no single wait is longer
    jitter_s: float = 0.05  # up to this much is added at random to each wait
    deadline_s: float = 5.0  # no retry starts after this long in all

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.deadline_s <= 0 or self.initial_s < 0:
            raise ValueError("a retry policy needs attempts >= 1 and a positive deadline")

    def run(self, call: Callable[[], T], sleep: Callable[[float], None] | None = None) -> T:
        """``call()``, retried on GatewayTimeout within the policy's bounds."""
        retrying = Retrying(
            retry=retry_if_exception_type(GatewayTimeout),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_s),
            wait=wait_exponential_jitter(
                initial=self.initial_s, max=self.max_wait_s, jitter=self.jitter_s
            ),
            before_sleep=before_sleep_log(log, logging.INFO),
            reraise=True,
            sleep=sleep or nap_sleep,
        )
        return retrying(call)


NO_RETRIES = RetryPolicy(attempts=1)


class RetryingGateway:
    """``inner`` with every money-moving call retried by ``policy`` (same idempotency key)."""

    def __init__(
        self,
        inner: PaymentGateway,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._sleep = sleep

    @property
    def name(self) -> str:
        """The wrapped adapter's name."""
        return self._inner.name

    def __getattr__(self, name: str) -> Any:
        # Anything else of the adapter (3-D Secure, payer actions) is passed through, unretried.
        return getattr(self._inner, name)

    def _run(self, call: Callable[[], T]) -> T:
        return self._policy.run(call, self._sleep)

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Vault a card (not retried: tokenising moves no money and has no key)."""
        return self._inner.tokenize(card, owner)

    def owner_of(self, token: str) -> str | None:
        """The card's owner."""
        return self._inner.owner_of(token)

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Authorise, retried with the same key."""
        return self._run(
            lambda: self._inner.authorize(
                token, amount_minor, currency, idempotency_key, owner=owner
            )
        )

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Capture, retried with the same key."""
        return self._run(lambda: self._inner.capture(reference, amount_minor, idempotency_key))

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Void, retried with the same key."""
        return self._run(lambda: self._inner.void(reference, idempotency_key))

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Refund, retried with the same key."""
        return self._run(lambda: self._inner.refund(reference, amount_minor, idempotency_key))

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """Look a key up, retried."""
        return self._run(lambda: self._inner.lookup(idempotency_key))
