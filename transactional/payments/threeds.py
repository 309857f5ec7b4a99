"""Payments that wait on the payer: 3-D Secure step-up (and, through the same port, UPI collect).

A gateway that can answer ``requires_action`` also implements :class:`ActionGateway`: where a
challenged authorisation stands now, and how to stop waiting for it. The payment stays
``pending`` (with its gateway charge noted) until the payer's answer is applied, once, by
:class:`~transactional.payments.service.PaymentService` (``resolve``), or by a signed webhook
(``webhooks.py``). :class:`ThreeDSChallenges` is the sandbox's challenge page: the shopper
confirms (or fails) the step-up, and the checkout waiting on it goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from transactional.payments.model import GatewayAuthorization, Payment, PaymentNotFound
from transactional.shared.errors import Conflict

THREE_DS_CONFIRM_PATH = "/v1/payments/{payment_id}/3ds/confirm"


class NoActionPending(Conflict):
    """The payment does not wait on the payer (answered already, expired, or never asked)."""

    code = "no_action_pending"


@runtime_checkable
class ActionGateway(Protocol):
    """A gateway whose authorisations can wait on the payer."""

    def action_outcome(self, reference: str) -> GatewayAuthorization:
        """Where the authorisation stands now: requires_action, authorized or declined."""

    def cancel_action(self, reference: str) -> GatewayAuthorization:
        """Stop waiting for the payer; the answer it has afterwards (authorized if the payer
        approved first: that hold is then voided as usual)."""


@runtime_checkable
class ChallengeGateway(Protocol):
    """A test-mode gateway that plays the issuer's 3-D Secure page."""

    def confirm_challenge(self, reference: str, approve: bool = True) -> GatewayAuthorization:
        """The payer's answer to the challenge."""


def current_answer(gateway: object, answer: GatewayAuthorization) -> GatewayAuthorization:
    """An authorise answer brought up to date: a ``requires_action`` one asks the gateway where
    the payer's answer stands (a stored answer is the first one, like any idempotent replay)."""
    if answer.status != "requires_action" or not isinstance(gateway, ActionGateway):
        return answer
    return gateway.action_outcome(answer.reference)


def cancel_action(gateway: object, reference: str) -> GatewayAuthorization | None:
    """Close a pending action at the gateway; None if the gateway cannot wait on payers."""
    if not isinstance(gateway, ActionGateway):
        return None
    return gateway.cancel_action(reference)


def confirm_url(payment_id: str) -> str:
    """Where the shopper answers a payment's 3-D Secure challenge (the next action)."""
    return THREE_DS_CONFIRM_PATH.format(payment_id=payment_id)


class Payments(Protocol):
    """What the challenge page needs of the payment service."""

    def find(self, payment_id: str) -> Payment | None:
        """A payment by id, or None."""

    def resolve(self, payment_id: str) -> Payment | None:
        """The payment with the gateway's current answer applied (once, with its event)."""


class ThreeDSChallenges:
    """The sandbox's 3-D Secure page: the payer confirms or fails a step-up."""

    def __init__(
        self,
        payments: Payments,
        gateway: object,
        *,
        on_settled: Callable[[Payment], None] = lambda payment: None,
    ) -> None:
        self._payments = payments
        self._gateway = gateway
        # The checkout waiting on the payment goes on (wired in souk.services).
        self._on_settled = on_settled

    def confirm(self, payment_id: str, customer_id: str, approve: bool = True) -> Payment:
        """The shopper's answer: authorised (then captured by its checkout) or declined
        (``authentication_failed``). NotFound for someone else's payment; NoActionPending
        (409) if it waits on nothing; a repeat of the same answer is a no-op."""
        payment = self._payments.find(payment_id)
        if payment is None or payment.customer_id != customer_id:
            raise PaymentNotFound(f"no payment {payment_id}")
        if payment.method != "card" or payment.gateway_reference is None:
            raise NoActionPending(
                f"payment {payment_id} has no 3-D Secure challenge", payment_id=payment_id
            )
        if not isinstance(self._gateway, ChallengeGateway):
            raise NoActionPending(
                "this gateway's challenges are answered on the issuer's page, not here",
                payment_id=payment_id,
            )
        if not payment.awaiting_action and not _answered(payment, approve):
            raise NoActionPending(
                f"payment {payment_id} is {payment.status}: its challenge is closed",
                payment_id=payment_id,
                payment_status=payment.status,
            )
        if payment.awaiting_action:
            try:
                self._gateway.confirm_challenge(payment.gateway_reference, approve)
            except Conflict as refused:  # cancelled (expired) or answered otherwise
                raise NoActionPending(refused.detail, payment_id=payment_id) from refused
        resolved = self._payments.resolve(payment_id)
        assert resolved is not None
        if resolved.awaiting_action:
            raise NoActionPending(f"payment {payment_id} is still waiting", payment_id=payment_id)
        self._on_settled(resolved)
        # As its checkout left it (captured, or voided when the order went meanwhile).
        return self._payments.find(payment_id) or resolved


def _answered(payment: Payment, approve: bool) -> bool:
    """Whether a payment no longer waiting got this answer already (a repeat is a no-op)."""
    if approve:
        return payment.status in ("authorized", "captured", "partially_refunded", "refunded")
    return payment.status == "declined"
