"""Builds the fraud scorer from the settings (called by ``souk.services``' fraud block)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from models.registry import ModelRegistry
from serving.fraud.feast_signals import FeastSignals
from serving.fraud.model import Thresholds
from serving.fraud.promoted import RegistryModels
from serving.fraud.service import CachedAccounts, FraudScorer
from souk.settings import Settings
from transactional.customers.service import CustomerService


def build_scorer(
    settings: Settings,
    redis_url: str,
    customers: CustomerService,
    *,
    clock: Callable[[], datetime],
) -> FraudScorer:
    """Feast online signals on ``redis_url``, the registry's promoted ``fraud`` model,
    accounts from the customer service, thresholds from the settings."""

    def account(customer_id: str) -> tuple[str, datetime] | None:
        found = customers.get(customer_id)
        return found.region, found.created_at

    signals = FeastSignals(settings, redis_url)
    threading.Thread(target=signals.warm, name="fraud-warm", daemon=True).start()
    return FraudScorer(
        signals,
        RegistryModels(
            ModelRegistry(settings=settings), check_every_s=settings.fraud_model_check_s
        ),
        CachedAccounts(account),
        Thresholds(settings.fraud_review_threshold, settings.fraud_decline_threshold),
        clock=clock,
    )
