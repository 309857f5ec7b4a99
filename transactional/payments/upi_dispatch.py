"""One PaymentGateway over the card gateway and the UPI sandbox: UPI instruments (``upi:``
tokens) and collect references (``upi_…``) go to the UPI adapter, everything else to the
card gateway. A stand-in for the regional router (per region and method) until it exists."""

from __future__ import annotations

from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayResult,
    GatewayTransaction,
    PaymentGateway,
)
from transactional.payments.threeds import ActionGateway, ChallengeGateway, NoActionPending
from transactional.payments.upi_sandbox import SandboxUpiGateway, is_upi_token


class UpiDispatch:
    """The card gateway, plus UPI through the UPI sandbox."""

    def __init__(self, cards: PaymentGateway, upi: SandboxUpiGateway) -> None:
        self._cards = cards
        self._upi = upi

    @property
    def name(self) -> str:
        """The card gateway's name (see :meth:`name_for`)."""
        return self._cards.name

    def name_for(self, method: str) -> str:
        """The adapter's name a payment of ``method`` goes through."""
        if method == "upi":
            return self._upi.name
        inner = getattr(self._cards, "name_for", None)  # a router knows its own methods
        return self._cards.name if inner is None else str(inner(method))

    def _of(self, reference: str) -> PaymentGateway:
        return self._upi if reference.startswith("upi_") else self._cards

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Vault a card at the card gateway."""
        return self._cards.tokenize(card, owner)

    def owner_of(self, token: str) -> str | None:
        """The owner of a vaulted card (a VPA has none)."""
        return (self._upi if is_upi_token(token) else self._cards).owner_of(token)

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Authorise at the instrument's gateway."""
        gateway = self._upi if is_upi_token(token) else self._cards
        return gateway.authorize(token, amount_minor, currency, idempotency_key, owner=owner)

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Capture at the charge's gateway."""
        return self._of(reference).capture(reference, amount_minor, idempotency_key)

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Void at the charge's gateway."""
        return self._of(reference).void(reference, idempotency_key)

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Refund at the charge's gateway."""
        return self._of(reference).refund(reference, amount_minor, idempotency_key)

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """What either gateway did under this key (keys are per payment: one of them)."""
        return self._cards.lookup(idempotency_key) or self._upi.lookup(idempotency_key)

    def action_outcome(self, reference: str) -> GatewayAuthorization:
        """Where a waiting authorisation stands now."""
        gateway = self._of(reference)
        if not isinstance(gateway, ActionGateway):
            raise NoActionPending(f"charge {reference} waits on nobody")
        return gateway.action_outcome(reference)

    def cancel_action(self, reference: str) -> GatewayAuthorization:
        """Stop waiting for the payer."""
        gateway = self._of(reference)
        if not isinstance(gateway, ActionGateway):
            raise NoActionPending(f"charge {reference} waits on nobody")
        return gateway.cancel_action(reference)

    def confirm_challenge(self, reference: str, approve: bool = True) -> GatewayAuthorization:
        """The payer's answer to a card's 3-D Secure challenge (test mode)."""
        if not isinstance(self._cards, ChallengeGateway):
            raise NoActionPending("the card gateway's challenges are answered elsewhere")
        return self._cards.confirm_challenge(reference, approve)
