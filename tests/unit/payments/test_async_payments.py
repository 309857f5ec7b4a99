"""Payments that wait on the payer, on fakes: the sandbox's 3-D Secure challenge, the UPI
sandbox's collect requests, and signed webhooks applied exactly once."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes import FakeUnitOfWork
from tests.unit.payments.fakes import FakeClock, FakePaymentRepository
from tests.unit.payments.test_payment_service import World
from transactional.payments.model import GatewayRefused, Payment
from transactional.payments.service import PaymentService
from transactional.payments.threeds import NoActionPending, ThreeDSChallenges
from transactional.payments.upi_dispatch import UpiDispatch
from transactional.payments.upi_sandbox import (
    MemoryUpiStore,
    SandboxUpiGateway,
    upi_token,
)
from transactional.payments.webhooks import (
    BadSignature,
    InvalidWebhook,
    Outcome,
    UnknownCharge,
    UnknownProvider,
    WebhookReplayed,
    WebhookService,
    parse,
    sign,
    signature_header,
    verify,
    webhook_body,
)
from transactional.shared.errors import InvalidRequest

THREE_DS = "4000002760003184"
SECRET = "whsec_test"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- signatures ------------------------------------------------------------------------------


def test_a_signature_verifies_only_with_the_secret_the_body_and_a_recent_timestamp() -> None:
    body = b'{"id":"evt_1"}'
    stamp = int(NOW.timestamp())
    header = signature_header(SECRET, stamp, body)
    assert verify(SECRET, header, body, NOW, 300) == stamp
    # A rotated secret: either of two v1 signatures may match.
    both = f"t={stamp},v1={sign('whsec_old', stamp, body)},v1={sign(SECRET, stamp, body)}"
    assert verify(SECRET, both, body, NOW, 300) == stamp
    for bad_header, bad_body, now in (
        (signature_header("whsec_other", stamp, body), body, NOW),
        (header, body + b" ", NOW),
        (header, body, NOW + timedelta(seconds=301)),
        (header, body, NOW - timedelta(seconds=301)),
        (f"v1={sign(SECRET, stamp, body)}", body, NOW),
        (f"t={stamp}", body, NOW),
        ("garbage", body, NOW),
        (None, body, NOW),
        ("", body, NOW),
    ):
        with pytest.raises(BadSignature):
            verify(SECRET, bad_header, bad_body, now, 300)


def test_only_well_formed_deliveries_parse() -> None:
    good = webhook_body("evt_1", "payment.authorized", "upi_1", 500, "INR", NOW)
    assert parse(good).reference == "upi_1"
    for body in (
        b"not json",
        b"[]",
        b'{"id": "evt_1"}',
        json.dumps({"id": "evt_1", "type": "payment.refunded", "data": {}}).encode(),
        good.replace(b'"evt_1"', b"12"),
    ):
        with pytest.raises(InvalidWebhook):
            parse(body)


# -- the webhook service ----------------------------------------------------------------------


class Deliveries:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], str | None] = {}

    def add(self, provider: str, delivery_id: str, type_: str, reference: str, at: Any) -> bool:
        if (provider, delivery_id) in self.rows:
            return False
        self.rows[(provider, delivery_id)] = None
        return True

    def settle(self, provider: str, delivery_id: str, outcome: Outcome) -> None:
        self.rows[(provider, delivery_id)] = outcome


class WebhookUow(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.payments = FakePaymentRepository()
        self.deliveries = Deliveries()

    def payment_of_reference(self, reference: str) -> str | None:
        for payment in self.payments.payments.values():
            if payment.gateway_reference == reference:
                return payment.payment_id
        return None

    def __exit__(self, *exc: object) -> None:
        # A rollback forgets the deliveries recorded in it (the real table is transactional).
        if self.events or exc[0] is not None:
            self.deliveries.rows = {k: v for k, v in self.deliveries.rows.items() if v}
        super().__exit__(*exc)


def waiting_payment(**changes: Any) -> Payment:
    fields: dict[str, Any] = {
        "payment_id": "pay_1",
        "order_id": "ord_in_1",
        "customer_id": "cus_1",
        "region": "in",
        "amount_minor": 49900,
        "currency": "INR",
        "instrument_token": "upi:success@souk",
        "idempotency_key": "chk_1:authorize",
        "created_at": NOW,
        "updated_at": NOW,
        "method": "upi",
        "gateway": "sandbox-upi",
        "gateway_reference": "upi_1",
    }
    fields.update(changes)
    return Payment(**fields)


class Hooks:
    def __init__(self) -> None:
        self.uow = WebhookUow()
        self.uow.payments.save(waiting_payment())
        self.settled: list[str] = []
        uow: Any = self.uow
        self.service = WebhookService(
            lambda: uow,
            {"sandbox-upi": SECRET},
            tolerance_s=300,
            clock=lambda: NOW,
            on_settled=lambda payment: self.settled.append(payment.payment_id),
        )

    def post(self, type_: str, delivery_id: str, amount: int = 49900, **extra: Any) -> Any:
        body = webhook_body(delivery_id, type_, "upi_1", amount, "INR", NOW, **extra)  # type: ignore[arg-type]
        header = signature_header(SECRET, int(NOW.timestamp()), body)
        return self.service.receive("sandbox-upi", header, body)

    def status(self) -> str:
        payment = self.uow.payments.get("pay_1")
        assert payment is not None
        return payment.status


def test_an_approval_is_applied_once_with_its_event_and_drives_the_checkout_on() -> None:
    hooks = Hooks()
    result = hooks.post("payment.authorized", "evt_1")
    assert (result.outcome, result.payment_status) == ("applied", "authorized")
    assert hooks.status() == "authorized"
    assert hooks.uow.event_types() == ["payment.authorized"]
    assert hooks.settled == ["pay_1"]
    with pytest.raises(WebhookReplayed):
        hooks.post("payment.authorized", "evt_1")
    # Out of order / duplicate news under other ids: recorded, ignored, nothing emitted.
    assert hooks.post("payment.failed", "evt_2").outcome == "ignored"
    assert hooks.post("payment.authorized", "evt_3").outcome == "ignored"
    assert hooks.post("payment.expired", "evt_4").outcome == "ignored"
    assert hooks.status() == "authorized"
    assert hooks.uow.event_types() == ["payment.authorized"]
    assert hooks.settled == ["pay_1"]
    assert hooks.uow.deliveries.rows[("sandbox-upi", "evt_2")] == "ignored"


def test_a_failure_declines_with_its_code_and_an_expiry_with_collect_expired() -> None:
    hooks = Hooks()
    hooks.post("payment.failed", "evt_1", failure_code="payer_declined")
    payment = hooks.uow.payments.get("pay_1")
    assert payment is not None and (payment.status, payment.decline_code) == (
        "declined",
        "payer_declined",
    )
    assert hooks.uow.event_types() == ["payment.failed"]
    expired = Hooks()
    expired.post("payment.expired", "evt_1")
    assert expired.uow.payments.payments["pay_1"].decline_code == "collect_expired"


def test_a_captured_notice_and_a_wrong_amount_change_nothing() -> None:
    hooks = Hooks()
    assert hooks.post("payment.captured", "evt_1").outcome == "ignored"
    assert hooks.post("payment.authorized", "evt_2", amount=1).outcome == "ignored"
    assert hooks.status() == "pending"
    assert hooks.uow.event_types() == []


def test_unknown_providers_bad_signatures_and_unknown_references_book_nothing() -> None:
    hooks = Hooks()
    body = webhook_body("evt_1", "payment.authorized", "upi_1", 49900, "INR", NOW)
    with pytest.raises(UnknownProvider):
        hooks.service.receive("stripe", signature_header(SECRET, int(NOW.timestamp()), body), body)
    with pytest.raises(BadSignature):
        hooks.service.receive(
            "sandbox-upi", signature_header("x", int(NOW.timestamp()), body), body
        )
    assert hooks.uow.deliveries.rows == {}
    unknown = webhook_body("evt_9", "payment.authorized", "upi_nope", 1, "INR", NOW)
    with pytest.raises(UnknownCharge):  # not recorded: the provider's retry is applied later
        hooks.service.receive(
            "sandbox-upi", signature_header(SECRET, int(NOW.timestamp()), unknown), unknown
        )
    assert hooks.uow.deliveries.rows == {}
    assert hooks.status() == "pending" and hooks.settled == []


# -- the UPI sandbox --------------------------------------------------------------------------


@pytest.fixture
def upi() -> SandboxUpiGateway:
    return SandboxUpiGateway(MemoryUpiStore(), secret=SECRET, collect_ttl_s=600, clock=FakeClock())


def test_a_collect_waits_until_the_payer_answers_as_the_vpa_says(upi: SandboxUpiGateway) -> None:
    approve = upi.authorize(upi_token("success@souk"), 500, "INR", "k1")
    decline = upi.authorize(upi_token("failure@souk"), 500, "INR", "k2")
    silent = upi.authorize(upi_token("timeout@souk"), 500, "INR", "k3")
    assert {a.status for a in (approve, decline, silent)} == {"requires_action"}
    assert upi.authorize(upi_token("success@souk"), 500, "INR", "k1") == approve  # replay
    assert upi.lookup("k1") == approve

    webhooks = upi.deliver()

    bodies = [json.loads(w.body) for w in webhooks]
    assert [(b["type"], b["data"]["failure_code"]) for b in bodies] == [
        ("payment.authorized", None),
        ("payment.failed", "payer_declined"),
    ]
    for webhook in webhooks:
        stamp = int(webhook.headers["Souk-Signature"].split(",")[0].removeprefix("t="))
        assert verify(SECRET, webhook.headers["Souk-Signature"], webhook.body, NOW, 60) == stamp
    assert upi.action_outcome(approve.reference).status == "authorized"
    assert upi.action_outcome(decline.reference).decline_code == "payer_declined"
    assert upi.action_outcome(silent.reference).status == "requires_action"
    # Unacknowledged answers are sent again with the same ids; acknowledged ones are not.
    assert [json.loads(w.body)["id"] for w in upi.deliver()] == [b["id"] for b in bodies]
    upi.acknowledge(approve.reference)
    assert len(upi.deliver()) == 1
    assert json.loads(upi.redeliver(approve.reference).body)["id"] == bodies[0]["id"]
    # The silent payer's collect lapses at the provider.
    upi._clock.advance(seconds=601)  # type: ignore[attr-defined]
    (lapsed,) = [w for w in upi.deliver(silent.reference)]
    assert json.loads(lapsed.body)["type"] == "payment.expired"
    assert upi.action_outcome(silent.reference).decline_code == "collect_expired"


def test_approved_money_is_captured_once_and_a_withdrawn_collect_cannot_be_approved(
    upi: SandboxUpiGateway,
) -> None:
    approved = upi.authorize(upi_token("success@souk"), 500, "INR", "k1")
    upi.deliver(approved.reference)
    first = upi.capture(approved.reference, None, "pay_1:capture")
    assert upi.capture(approved.reference, None, "pay_1:capture") == first
    assert upi.refund(approved.reference, 200, "pay_1:refund:1").amount_minor == 200
    withdrawn = upi.authorize(upi_token("success@souk"), 500, "INR", "k2")
    assert upi.cancel_action(withdrawn.reference).decline_code == "collect_withdrawn"
    assert upi.deliver(withdrawn.reference) == []  # the payer can no longer approve it
    with pytest.raises(GatewayRefused):
        upi.capture(withdrawn.reference, None, "pay_2:capture")
    with pytest.raises(InvalidRequest):
        upi.authorize(upi_token("success@souk"), 500, "EUR", "k3")
    with pytest.raises(InvalidRequest):
        upi_token("no-at-sign")


# -- 3-D Secure through the payment service ----------------------------------------------------


def three_ds_world() -> tuple[World, ThreeDSChallenges, list[str]]:
    world = World()
    settled: list[str] = []
    challenges = ThreeDSChallenges(
        world.service, world.gateway, on_settled=lambda p: settled.append(p.payment_id)
    )
    return world, challenges, settled


def test_a_challenged_card_stays_pending_until_confirmed_then_is_authorized_once() -> None:
    world, challenges, settled = three_ds_world()
    payment = world.authorize(THREE_DS)
    assert payment.awaiting_action and payment.status == "pending"
    assert world.types() == ["payment.action_required"]
    assert world.payloads("payment.action_required")[0]["action"] == "three_d_secure"
    # Asking again (a retry, recovery) records nothing new.
    assert world.service.resolve(payment.payment_id).awaiting_action  # type: ignore[union-attr]
    assert world.types() == ["payment.action_required"]
    with pytest.raises(Exception) as someone_else:
        challenges.confirm(payment.payment_id, "cus_2")
    assert getattr(someone_else.value, "code", None) == "payment_not_found"

    confirmed = challenges.confirm(payment.payment_id, "cus_1")

    assert confirmed.status == "authorized"
    assert world.types() == ["payment.action_required", "payment.authorized"]
    assert settled == [payment.payment_id]
    assert world.service.capture(payment.payment_id).status == "captured"
    assert challenges.confirm(payment.payment_id, "cus_1").status == "captured"  # a no-op
    with pytest.raises(NoActionPending):
        challenges.confirm(payment.payment_id, "cus_1", approve=False)


def test_a_failed_challenge_declines_and_a_voided_one_cannot_be_confirmed_later() -> None:
    world, challenges, _ = three_ds_world()
    failed = world.authorize(THREE_DS)
    assert challenges.confirm(failed.payment_id, "cus_1", approve=False).decline_code == (
        "authentication_failed"
    )
    abandoned = world.authorize(THREE_DS)
    assert world.service.void(abandoned.payment_id).status == "voided"
    with pytest.raises(NoActionPending):
        challenges.confirm(abandoned.payment_id, "cus_1")
    charge = world.ledger.charges[abandoned.gateway_reference or ""]
    assert charge.status == "voided"  # closed at the gateway: nothing can be held later


def test_a_void_racing_the_payers_approval_releases_the_hold() -> None:
    world, _, _ = three_ds_world()
    payment = world.authorize(THREE_DS)
    world.gateway.confirm_challenge(payment.gateway_reference or "", True)  # the payer, first

    voided = world.service.void(payment.payment_id)

    assert voided.status == "voided"
    assert world.types() == ["payment.action_required", "payment.authorized", "payment.voided"]
    assert world.ledger.charges[payment.gateway_reference or ""].status == "voided"


def test_upi_goes_to_the_upi_sandbox_and_cards_to_the_card_gateway() -> None:
    world = World()
    upi = SandboxUpiGateway(MemoryUpiStore(), secret=SECRET, clock=world.clock)
    world.service.wrap_gateway(lambda cards: UpiDispatch(cards, upi))
    assert world.service.gateway_for("upi") == "sandbox-upi"
    assert world.service.gateway_for("card") == world.service.gateway
    payment = world.service.authorize(
        "pay_upi",
        "ord_in_1",
        "cus_1",
        49900,
        "INR",
        upi_token("success@souk"),
        "chk_upi:authorize",
        method="upi",
    )
    assert payment.awaiting_action and payment.gateway_reference.startswith("upi_")  # type: ignore[union-attr]
    upi.deliver(payment.gateway_reference)
    assert world.service.resolve("pay_upi").status == "authorized"  # type: ignore[union-attr]
    assert world.service.capture("pay_upi").status == "captured"
    card_payment = world.authorize()
    assert card_payment.status == "authorized" and card_payment.gateway_reference.startswith("ch_")
    assert dataclasses.replace(card_payment).method == "card"
    assert isinstance(world.service, PaymentService)
