"""The EMI plan a payment records, from its instrument token (pure, apart from the rates file)."""

from __future__ import annotations

from typing import Any

from transactional.payments.emi import current_emi_rates
from transactional.payments.instruments import InvalidInstrument, parse_instrument
from transactional.payments.wallet_moves import region_of_currency


def emi_columns(token: str, amount_minor: int, currency: str) -> dict[str, Any]:
    """The payment's ``emi_*`` fields for an EMI instrument (nothing for any other)."""
    try:
        instrument = parse_instrument(token)
    except InvalidInstrument:
        return {}
    if instrument.kind != "emi":
        return {}
    assert instrument.emi_months is not None and instrument.emi_bank is not None
    plan = current_emi_rates().plan(
        region_of_currency(currency), instrument.emi_bank, instrument.emi_months, amount_minor
    )
    return {
        "emi_months": plan.months,
        "emi_bank": plan.bank,
        "emi_rate_bp": plan.rate_bp,
        "emi_monthly_minor": plan.monthly_instalment_minor,
        "emi_interest_minor": plan.total_interest_minor,
    }
