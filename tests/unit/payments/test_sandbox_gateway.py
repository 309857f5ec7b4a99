"""The sandbox card gateway over an in-memory store: test cards, idempotency, card checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.payments.fakes import FakeClock, MemorySandboxLedger, card
from transactional.payments.model import (
    ChargeNotFound,
    GatewayAuthorization,
    GatewayRefused,
    GatewayTimeout,
    GatewayTransaction,
    IdempotencyKeyReused,
    InvalidCard,
    UnknownInstrument,
    card_brand,
    luhn_valid,
)
from transactional.payments.sandbox import SandboxCardGateway
from transactional.shared.errors import InvalidRequest


@pytest.fixture
def ledger() -> MemorySandboxLedger:
    return MemorySandboxLedger()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(ledger: MemorySandboxLedger, clock: FakeClock) -> SandboxCardGateway:
    return SandboxCardGateway(ledger, clock=clock)


def test_the_approved_card_is_authorised_with_brand_last4_and_hold_expiry(
    gateway: SandboxCardGateway, clock: FakeClock
) -> None:
    token = gateway.tokenize(card("4242 4242 4242 4242"))
    auth = gateway.authorize(token, 1999, "EUR", "k1")
    assert auth.status == "authorized" and auth.decline_code is None
    assert (auth.card_brand, auth.last4, auth.amount_minor, auth.currency) == (
        "visa",
        "4242",
        1999,
        "EUR",
    )
    assert auth.expires_at is not None and auth.expires_at > clock.now


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
    ],
)
def test_declining_cards_decline_with_their_code_and_are_recorded(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger, number: str, code: str
) -> None:
    auth = gateway.authorize(gateway.tokenize(card(number)), 500, "EUR", f"k-{code}")
    assert (auth.status, auth.decline_code, auth.expires_at) == ("declined", code, None)
    assert ledger.charges[auth.reference].status == "declined"
    assert gateway.lookup(f"k-{code}") == auth


def test_the_timeout_card_records_the_hold_then_times_out(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    token = gateway.tokenize(card("4000000000000259"))
    with pytest.raises(GatewayTimeout) as raised:
        gateway.authorize(token, 700, "USD", "k-timeout")
    assert raised.value.idempotency_key == "k-timeout"
    found = gateway.lookup("k-timeout")
    assert isinstance(found, GatewayAuthorization) and found.status == "authorized"
    assert ledger.charges[found.reference].status == "authorized"
    # A retry with the same key learns the same answer instead of holding twice.
    assert gateway.authorize(token, 700, "USD", "k-timeout") == found
    assert len(ledger.charges) == 1


def test_lookup_of_an_unknown_key_is_none(gateway: SandboxCardGateway) -> None:
    assert gateway.lookup("never-sent") is None


def test_same_key_replays_the_first_result(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    token = gateway.tokenize(card())
    first = gateway.authorize(token, 1000, "EUR", "k-same")
    again = gateway.authorize(token, 1000, "EUR", "k-same")
    assert again == first and len(ledger.charges) == 1
    capture = gateway.capture(first.reference, None, "cap-1")
    assert gateway.capture(first.reference, None, "cap-1") == capture
    refund = gateway.refund(first.reference, 400, "re-1")
    assert gateway.refund(first.reference, 400, "re-1") == refund
    assert ledger.charges[first.reference].refunded_minor == 400


def test_same_key_with_other_parameters_is_refused(gateway: SandboxCardGateway) -> None:
    token = gateway.tokenize(card())
    auth = gateway.authorize(token, 1000, "EUR", "k-mismatch")
    with pytest.raises(IdempotencyKeyReused):
        gateway.authorize(token, 1001, "EUR", "k-mismatch")
    with pytest.raises(IdempotencyKeyReused):
        gateway.capture(auth.reference, None, "k-mismatch")  # other operation, same key
    gateway.capture(auth.reference, 500, "cap")
    with pytest.raises(IdempotencyKeyReused):
        gateway.capture(auth.reference, 600, "cap")


def test_capture_void_refund_follow_the_charge_and_never_exceed_it(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    token = gateway.tokenize(card("5555555555554444"))
    auth = gateway.authorize(token, 1000, "EUR", "a")
    assert auth.card_brand == "mastercard"
    with pytest.raises(GatewayRefused, match="between 1 and the held"):
        gateway.capture(auth.reference, 1001, "c0")
    with pytest.raises(GatewayRefused) as not_refundable:
        gateway.refund(auth.reference, 1, "r0")
    assert not_refundable.value.code == "charge_not_refundable"
    captured = gateway.capture(auth.reference, 800, "c1")
    assert isinstance(captured, GatewayTransaction)
    assert (captured.kind, captured.amount_minor) == ("capture", 800)
    with pytest.raises(GatewayRefused) as twice:
        gateway.capture(auth.reference, None, "c2")
    assert twice.value.code == "charge_not_capturable"
    with pytest.raises(GatewayRefused) as not_voidable:
        gateway.void(auth.reference, "v1")
    assert not_voidable.value.code == "charge_not_voidable"
    gateway.refund(auth.reference, 300, "r1")
    assert ledger.charges[auth.reference].status == "partially_refunded"
    with pytest.raises(GatewayRefused) as too_much:
        gateway.refund(auth.reference, 501, "r2")
    assert too_much.value.code == "refund_exceeds_capture"
    gateway.refund(auth.reference, 500, "r3")
    assert ledger.charges[auth.reference].status == "refunded"
    # A refused call stores nothing: its key stays free.
    assert gateway.lookup("r2") is None


def test_void_releases_a_hold_once(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    auth = gateway.authorize(gateway.tokenize(card()), 1000, "EUR", "a")
    voided = gateway.void(auth.reference, "v")
    assert (voided.kind, voided.amount_minor) == ("void", 1000)
    assert gateway.void(auth.reference, "v") == voided
    assert ledger.charges[auth.reference].status == "voided"
    with pytest.raises(GatewayRefused):
        gateway.capture(auth.reference, None, "c")


def test_unknown_token_and_charge_are_typed_errors(gateway: SandboxCardGateway) -> None:
    with pytest.raises(UnknownInstrument):
        gateway.authorize("tok_nope", 100, "EUR", "x")
    with pytest.raises(ChargeNotFound):
        gateway.capture("ch_nope", None, "y")


@pytest.mark.parametrize(
    ("amount", "currency"), [(0, "EUR"), (-5, "EUR"), (100, "eur"), (100, "EURO")]
)
def test_bad_amounts_and_currencies_are_refused(
    gateway: SandboxCardGateway, amount: int, currency: str
) -> None:
    token = gateway.tokenize(card())
    with pytest.raises(InvalidRequest):
        gateway.authorize(token, amount, currency, f"k{amount}{currency}")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"number": "4242424242424241"}, "luhn"),
        ({"number": "4242-abc"}, "number"),
        ({"number": "42"}, "number"),
        ({"exp_month": 13}, "expiry"),
        ({"exp_month": 2, "exp_year": 2026}, "expired"),  # the clock says March 2026
        ({"exp_year": 2019}, "expired"),
        ({"cvc": "12"}, "cvc"),
        ({"holder": "  "}, "holder"),
    ],
)
def test_card_checks_raise_invalid_card(
    gateway: SandboxCardGateway,
    ledger: MemorySandboxLedger,
    changes: dict[str, object],
    reason: str,
) -> None:
    with pytest.raises(InvalidCard) as raised:
        gateway.tokenize(card(**changes))  # type: ignore[arg-type]
    assert raised.value.code == "invalid_card" and raised.value.extra["reason"] == reason
    assert "4242424242424241" not in raised.value.detail
    assert ledger.cards == {}


def test_a_card_is_valid_through_its_expiry_month_and_two_digit_years_work(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    token = gateway.tokenize(card(exp_month=3, exp_year=26))
    assert ledger.cards[token].exp_year == 2026


def test_the_vault_keeps_the_number_but_nothing_else_shows_it(
    gateway: SandboxCardGateway, ledger: MemorySandboxLedger
) -> None:
    secret = card("378282246310005", cvc="1234")
    assert "378282246310005" not in repr(secret) and "1234" not in repr(secret)
    token = gateway.tokenize(secret)
    assert ledger.cards[token].number == "378282246310005"
    assert ledger.cards[token].brand == "amex"
    auth = gateway.authorize(token, 100, "USD", "amex")
    assert "378282246310005" not in repr(auth) and auth.last4 == "0005"


def test_a_vaulted_card_that_expired_since_is_declined(
    ledger: MemorySandboxLedger,
) -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    gateway = SandboxCardGateway(ledger, clock=clock)
    token = gateway.tokenize(card(exp_month=3, exp_year=2026))
    clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    assert gateway.authorize(token, 100, "EUR", "late").decline_code == "expired_card"


def test_luhn_and_brand_helpers() -> None:
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424243")
    assert not luhn_valid("42a2")
    assert card_brand("6011000990139424") == "discover"
    assert card_brand("2223003122003222") == "mastercard"
    assert card_brand("9999999999999995") == "unknown"
