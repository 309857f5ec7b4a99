"""The retry policy of gateway calls: transient timeouts retried with the same idempotency key,
bounded in attempts and time; refusals and declines never retried."""

from __future__ import annotations

import pytest

from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayRefused,
    GatewayResult,
    GatewayTimeout,
    GatewayTransaction,
)
from transactional.payments.retry import RetryingGateway, RetryPolicy


class FlakyGateway:
    """A processor that times out on the first ``failures`` calls, then answers."""

    name = "flaky"

    def __init__(self, failures: int, refuse: bool = False) -> None:
        self.failures = failures
        self.refuse = refuse
        self.keys: list[str] = []

    def _call(self, key: str) -> None:
        self.keys.append(key)
        if self.refuse:
            raise GatewayRefused("not capturable", code="charge_not_capturable")
        if len(self.keys) <= self.failures:
            raise GatewayTimeout("authorize", key)

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        return "tok_1"

    def owner_of(self, token: str) -> str | None:
        return None

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        self._call(idempotency_key)
        return GatewayAuthorization("ch_1", "authorized", amount_minor, currency, "visa", "4242")

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        self._call(idempotency_key)
        return GatewayTransaction("tx_1", reference, "capture", amount_minor or 0, "EUR")

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        self._call(idempotency_key)
        return GatewayTransaction("tx_2", reference, "void", 0, "EUR")

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        self._call(idempotency_key)
        return GatewayTransaction("tx_3", reference, "refund", amount_minor, "EUR")

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        return None

    def confirm_challenge(self, reference: str, approve: bool = True) -> str:
        return f"confirmed {reference}"


class Sleeps:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts, initial_s=0.1, max_wait_s=0.4, jitter_s=0.05, deadline_s=60.0
    )


def test_a_timeout_that_clears_is_retried_with_the_same_key() -> None:
    flaky, sleeps = FlakyGateway(failures=2), Sleeps()
    gateway = RetryingGateway(flaky, policy(), sleep=sleeps)
    result = gateway.authorize("tok_1", 1200, "EUR", "pay_1:authorize", owner="cus_1")
    assert result.status == "authorized"
    assert flaky.keys == ["pay_1:authorize"] * 3  # two timeouts, then the answer
    assert len(sleeps.waits) == 2
    # Exponential backoff with jitter: 0.1 (+ up to 0.05), then 0.2 (+ up to 0.05).
    assert 0.1 <= sleeps.waits[0] <= 0.15
    assert 0.2 <= sleeps.waits[1] <= 0.25


def test_the_waits_are_capped_and_the_attempts_bounded() -> None:
    flaky, sleeps = FlakyGateway(failures=100), Sleeps()
    gateway = RetryingGateway(flaky, policy(attempts=5), sleep=sleeps)
    with pytest.raises(GatewayTimeout) as raised:
        gateway.capture("ch_1", 1200, "pay_1:capture")
    assert raised.value.idempotency_key == "pay_1:capture"  # the last timeout, for the caller
    assert flaky.keys == ["pay_1:capture"] * 5
    assert len(sleeps.waits) == 4
    assert all(wait <= 0.4 for wait in sleeps.waits)  # max_wait_s caps each wait


def test_no_retry_starts_after_the_deadline() -> None:
    flaky = FlakyGateway(failures=10_000)
    # Real (tiny) sleeps: tenacity measures the deadline on the monotonic clock. Without the
    # deadline this would make 1000 calls (10 s of waits); with it, a handful.
    bounded = RetryPolicy(
        attempts=1000, initial_s=0.01, max_wait_s=0.01, jitter_s=0.0, deadline_s=0.05
    )
    with pytest.raises(GatewayTimeout):
        RetryingGateway(flaky, bounded).void("ch_1", "pay_1:void")
    assert 1 <= len(flaky.keys) < 100
    assert set(flaky.keys) == {"pay_1:void"}


def test_refusals_are_not_retried() -> None:
    flaky, sleeps = FlakyGateway(failures=0, refuse=True), Sleeps()
    gateway = RetryingGateway(flaky, policy(), sleep=sleeps)
    with pytest.raises(GatewayRefused):
        gateway.refund("ch_1", 100, "pay_1:refund:1")
    assert flaky.keys == ["pay_1:refund:1"] and sleeps.waits == []


def test_one_attempt_means_no_retry() -> None:
    flaky = FlakyGateway(failures=1)
    gateway = RetryingGateway(flaky, RetryPolicy(attempts=1), sleep=Sleeps())
    with pytest.raises(GatewayTimeout):
        gateway.authorize("tok_1", 100, "EUR", "k")
    assert flaky.keys == ["k"]


def test_other_adapter_methods_pass_through_unretried() -> None:
    gateway = RetryingGateway(FlakyGateway(failures=0), policy())
    assert gateway.name == "flaky"
    assert gateway.confirm_challenge("ch_9") == "confirmed ch_9"


def test_a_policy_must_be_bounded() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline_s=0)
