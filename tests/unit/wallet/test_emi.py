"""EMI plans: the annuity maths, the rates file, and unknown banks or terms."""

from __future__ import annotations

from decimal import Decimal

import pytest

from transactional.payments.emi import (
    InvalidEmiRates,
    UnknownEmiPlan,
    instalment_plan,
    load_emi_rates,
    parse_emi_rates,
)


def test_an_annuity_at_twelve_percent() -> None:
    # 1000.00 over 12 months at 12 %/year (1 %/month): the textbook instalment is 88.85.
    plan = instalment_plan("hdfc", 12, Decimal("12"), 100_000)
    assert plan.monthly_instalment_minor == 8885
    assert plan.total_minor == 12 * 8885
    assert plan.total_interest_minor == 12 * 8885 - 100_000
    assert plan.rate_bp == 1200


def test_a_no_cost_plan_splits_the_principal_without_interest() -> None:
    plan = instalment_plan("hdfc", 3, Decimal("0"), 100_000)
    assert (plan.monthly_instalment_minor, plan.total_interest_minor, plan.total_minor) == (
        33_334,
        0,
        100_000,
    )


def test_the_packaged_rates_show_every_term_of_a_bank() -> None:
    rates = load_emi_rates()
    plans = rates.plans("in", "hdfc", 50_000)
    assert [plan.months for plan in plans] == [3, 6, 12]
    assert plans[0].total_interest_minor == 0  # no-cost 3 months
    assert plans[1].total_interest_minor > 0 and plans[2].total_minor > plans[1].total_minor
    assert "hdfc" in rates.banks("in") and rates.banks("eu")


def test_unknown_banks_and_terms_are_refused() -> None:
    rates = load_emi_rates()
    with pytest.raises(UnknownEmiPlan) as bank:
        rates.plans("in", "nobank", 1000)
    assert bank.value.extra["banks"] == rates.banks("in") and "hdfc" in rates.banks("in")
    with pytest.raises(UnknownEmiPlan):
        rates.plan("in", "sbi", 3, 1000)  # SBI offers 6 and 12 months only
    with pytest.raises(UnknownEmiPlan):
        rates.plans("us", "hdfc", 1000)  # an Indian bank: no plan in the US


def test_a_bad_rates_file_is_refused() -> None:
    with pytest.raises(InvalidEmiRates):
        parse_emi_rates({"in": {"hdfc": {"4": "10"}}})
    with pytest.raises(InvalidEmiRates):
        parse_emi_rates({"in": {"hdfc": {"6": "lots"}}})
    assert parse_emi_rates({"EU": {"ING": {"3": "1.5"}}}).plan("eu", "ing", 3, 300).months == 3
