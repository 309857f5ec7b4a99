"""Wiring of the payments that wait on the payer (3-D Secure, UPI collect) and their webhooks.

Called from the ``# --- payments ---`` block of :func:`souk.services.build_services`, once
the payment and checkout services exist: UPI goes to the UPI sandbox beside the cards, and a
payer's answer (a confirmed challenge, a webhook) drives its waiting checkout on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from souk.settings import Settings
from transactional.checkout.service import CheckoutService
from transactional.payments.model import Payment
from transactional.payments.service import PaymentService
from transactional.payments.threeds import ThreeDSChallenges
from transactional.payments.upi_dispatch import UpiDispatch
from transactional.payments.upi_sandbox import PROVIDER, SandboxUpiGateway
from transactional.payments.upi_sandbox_store import SqlUpiStore
from transactional.payments.webhooks import WebhookService
from transactional.payments.webhooks_repository import SqlWebhookUnitOfWork
from transactional.shared.outbox import Outbox


def upi_sandbox(
    settings: Settings, engine: Engine, clock: Callable[[], datetime]
) -> SandboxUpiGateway:
    """The UPI sandbox on the database, signing with the ``sandbox-upi`` webhook secret."""
    secret = settings.payment_webhook_secrets.get(PROVIDER)
    if not secret:
        raise ValueError(f"SOUK_PAYMENT_WEBHOOK_SECRETS has no secret for {PROVIDER!r}")
    return SandboxUpiGateway(
        SqlUpiStore(engine), secret=secret, collect_ttl_s=settings.upi_collect_ttl_s, clock=clock
    )


def wire_async_payments(
    provided: dict[str, Any],
    settings: Settings,
    engine: Engine,
    outbox: Outbox,
    clock: Callable[[], datetime],
) -> None:
    """Add UPI, the 3-D Secure page and the webhook receiver to the provided services."""
    payments: PaymentService = provided["payments"]
    checkout: CheckoutService = provided["checkout"]
    upi = upi_sandbox(settings, engine, clock)
    gateway = payments.wrap_gateway(lambda cards: UpiDispatch(cards, upi))

    def settled(payment: Payment) -> None:
        checkout.payment_settled(payment.payment_id)

    provided["upi_sandbox"] = upi
    provided["three_ds"] = ThreeDSChallenges(payments, gateway, on_settled=settled)

    def webhook_uow() -> Any:  # the SQL unit of work, as the service's port
        return SqlWebhookUnitOfWork(engine, outbox)

    provided["payment_webhooks"] = WebhookService(
        webhook_uow,
        settings.payment_webhook_secrets,
        tolerance_s=settings.payment_webhook_tolerance_s,
        clock=clock,
        on_settled=settled,
    )
