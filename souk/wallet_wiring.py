"""Wiring of the wallet, split, EMI, regional routing and retries (the ``# --- payments ---``
block of :func:`souk.services.build_services`).

The payment service's card gateway is put behind a :class:`PaymentRouter`: each card adapter
retried on timeouts (:class:`RetryingGateway`), the wallet and split adapters beside it, routes
from ``SOUK_PAYMENT_ROUTES``. The wallet service (balances, top-ups, credits) pays its top-ups
through the same router.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from souk.settings import Settings
from transactional.payments.emi import load_emi_rates, use_emi_rates
from transactional.payments.model import PaymentGateway
from transactional.payments.retry import RetryingGateway, RetryPolicy
from transactional.payments.routing import SPLIT, WALLET, PaymentRouter, parse_routes
from transactional.payments.service import PaymentService
from transactional.payments.wallet_gateway import WalletGateway
from transactional.payments.wallet_repository import SqlWalletUnitOfWork
from transactional.payments.wallet_service import WalletService
from transactional.payments.wallet_split import SplitGateway
from transactional.shared.outbox import Outbox


def retry_policy(settings: Settings) -> RetryPolicy:
    """The gateway retry policy of the settings (SOUK_PAYMENT_RETRY_*)."""
    return RetryPolicy(
        attempts=settings.payment_retry_attempts,
        initial_s=settings.payment_retry_initial_s,
        max_wait_s=settings.payment_retry_max_wait_s,
        jitter_s=settings.payment_retry_initial_s,
        deadline_s=settings.payment_retry_deadline_s,
    )


def build_router(
    settings: Settings,
    engine: Engine,
    outbox: Outbox,
    cards: PaymentGateway,
    clock: Callable[[], datetime],
    extra_adapters: Mapping[str, PaymentGateway] | None = None,
) -> PaymentRouter:
    """The router over ``cards`` (retried), the wallet and split adapters, and any others."""

    def uow() -> SqlWalletUnitOfWork:
        return SqlWalletUnitOfWork(engine, outbox)

    wallet = WalletGateway(uow, clock=clock)
    adapters: dict[str, PaymentGateway] = {
        cards.name: RetryingGateway(cards, retry_policy(settings)),
        WALLET: wallet,
        **(extra_adapters or {}),
    }
    router = PaymentRouter(
        adapters,
        parse_routes(settings.payment_routes),
        default=cards.name,
        default_region=settings.region,
    )
    # The split's card leg is routed like any card payment (so it goes through the router).
    router.register(SPLIT, SplitGateway(wallet, router, uow, clock=clock))
    return router


def wire_wallet(
    provided: dict[str, Any],
    settings: Settings,
    engine: Engine,
    outbox: Outbox,
    clock: Callable[[], datetime],
) -> PaymentRouter:
    """Route the payment service's gateway and provide ``wallet`` (the wallet service)."""
    payments: PaymentService = provided["payments"]
    routed: dict[str, PaymentRouter] = {}

    def wrap(cards: PaymentGateway) -> PaymentGateway:
        routed["router"] = build_router(settings, engine, outbox, cards, clock)
        return routed["router"]

    payments.wrap_gateway(wrap)
    router = routed["router"]
    provided["wallet"] = WalletService(
        lambda: SqlWalletUnitOfWork(engine, outbox),
        router,
        # Keys the top-ups' request fingerprints: no raw card, no offline brute force.
        card_key=hashlib.sha256(b"souk-wallet-card:" + settings.jwt_secret.encode()).digest(),
        clock=clock,
    )
    provided["payment_router"] = router
    rates = load_emi_rates(settings.emi_rates_file)
    use_emi_rates(rates)  # the checkout records plans from the same table it shows
    provided["emi_rates"] = rates
    return router


__all__ = ["build_router", "parse_routes", "retry_policy", "wire_wallet"]
