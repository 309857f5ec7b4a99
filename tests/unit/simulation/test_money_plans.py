"""The money decisions of the shopper model: payment-method mix per region, wallet top-ups,
3-D Secure step-ups, UPI answers and returns; seeded, and leaving the other draws alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, fields, replace
from typing import Any

import pytest

from souk.simulation import (
    DEFAULT_PAYMENT_MIX,
    METHODS,
    PaymentPlan,
    ShopperModel,
    SimulationConfig,
    with_money,
)
from tests.unit.test_simulate import catalog

EMI: dict[str, dict[str, tuple[int, ...]]] = {
    "eu": {"ing": (3, 6, 12)},
    "us": {"chase": (3, 6)},
    "in": {"sbi": (6, 12)},
}
MONEY_FIELDS = {f.name for f in fields(PaymentPlan)}


def money(**shares: Any) -> SimulationConfig:
    base = SimulationConfig(users=60, seed=5, fraud_share=0.05, emi_terms=EMI)
    return with_money(replace(base, **shares))


def test_by_default_everyone_pays_by_card_and_nothing_is_returned() -> None:
    model = ShopperModel(catalog(), SimulationConfig(users=30, seed=4, emi_terms=EMI))
    for plan in model.sessions(200):
        assert (plan.payment, plan.topup, plan.step_up, plan.upi_answer) == (
            "card",
            "none",
            "none",
            "none",
        )
        assert plan.return_lines == plan.damaged_lines == 0


def test_each_region_pays_with_its_mix_upi_only_in_india() -> None:
    model = ShopperModel(catalog(), money())
    by_region: dict[str, Counter[str]] = {}
    for plan in model.sessions(3000):
        if plan.fraud:
            continue
        region = model.profiles[plan.shopper].region
        by_region.setdefault(region, Counter())[plan.payment] += 1
    assert set(by_region) == {"eu", "us", "in"}
    for region, counts in by_region.items():
        mix = DEFAULT_PAYMENT_MIX[region]
        assert set(counts) == set(mix)  # every method of the mix, no other
        total = sum(counts.values())
        for method, weight in mix.items():
            assert abs(counts[method] / total - weight / sum(mix.values())) < 0.06, (region, method)
    assert "upi" in by_region["in"] and all("upi" not in by_region[r] for r in ("eu", "us"))
    assert {m for counts in by_region.values() for m in counts} == set(METHODS)


def test_each_method_carries_what_it_needs_and_only_that() -> None:
    config = money()
    model = ShopperModel(catalog(), config)
    seen: Counter[str] = Counter()
    for plan in model.sessions(2000):
        region = model.profiles[plan.shopper].region
        wallet = plan.payment in ("wallet", "split")
        assert (plan.topup != "none") == wallet
        assert (plan.topup_minor > 0) == wallet
        assert (plan.wallet_share > 0) == (plan.payment == "split")
        assert 0 < plan.wallet_share < 1 or plan.payment != "split"
        assert (plan.step_up != "none") == (plan.payment == "card_3ds")
        assert (plan.upi_answer != "none") == (plan.payment == "upi")
        if plan.payment == "emi":
            assert plan.emi_bank is not None and plan.emi_months is not None
            assert plan.emi_months in EMI[region][plan.emi_bank]
        else:
            assert plan.emi_bank is None and plan.emi_months is None
        assert 0 <= plan.damaged_lines <= plan.return_lines <= 2
        if plan.fraud:  # fraudsters pay by card and send nothing back
            assert plan.payment == "card" and plan.return_lines == 0
        seen[plan.topup] += 1
        seen[plan.step_up] += 1
        seen[plan.upi_answer] += 1
        seen["returned" if plan.return_lines else "kept"] += 1
        seen["damaged" if plan.damaged_lines else "intact"] += 1
    for kind in ("separate", "at_checkout", "confirm", "abandon", "approve", "decline", "timeout"):
        assert seen[kind] > 0, kind
    returned = seen["returned"] / (seen["returned"] + seen["kept"])
    assert abs(returned - config.return_share) < 0.05
    assert seen["damaged"] > 0


def test_shares_of_step_ups_abandoned_and_upi_answers_follow_the_config() -> None:
    config = money(abandon_step_up_share=0.5, upi_decline_share=0.2, upi_timeout_share=0.3)
    plans = list(ShopperModel(catalog(), config).sessions(6000))
    steps = Counter(p.step_up for p in plans if p.payment == "card_3ds")
    answers = Counter(p.upi_answer for p in plans if p.payment == "upi")
    assert abs(steps["abandon"] / steps.total() - 0.5) < 0.07
    assert abs(answers["decline"] / answers.total() - 0.2) < 0.06
    assert abs(answers["timeout"] / answers.total() - 0.3) < 0.06


def test_money_plans_are_seeded_and_leave_every_other_decision_as_it_was() -> None:
    plain = SimulationConfig(users=40, seed=9, fraud_share=0.05, emi_terms=EMI)
    paying = with_money(plain)
    before = list(ShopperModel(catalog(), plain).sessions(300))
    after = list(ShopperModel(catalog(), paying).sessions(300))
    again = list(ShopperModel(catalog(), paying).sessions(300))
    assert after == again
    assert before != after
    for old, new in zip(before, after, strict=True):
        kept = {k: v for k, v in asdict(new).items() if k not in MONEY_FIELDS}
        assert kept == {k: v for k, v in asdict(old).items() if k not in MONEY_FIELDS}
    other_seed = list(ShopperModel(catalog(), replace(paying, seed=10)).sessions(300))
    assert [p.payment for p in other_seed] != [p.payment for p in after]


def test_with_money_mixes_only_the_simulated_regions_and_keeps_a_chosen_return_share() -> None:
    config = with_money(
        SimulationConfig(regions=("eu",), region_weights=(1.0,), return_share=0.6, emi_terms=EMI)
    )
    assert dict(config.payment_mix) == {"eu": DEFAULT_PAYMENT_MIX["eu"]}
    assert config.return_share == 0.6
    assert with_money(SimulationConfig(emi_terms=EMI)).return_share > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"payment_mix": {"eu": {"upi": 1.0}}},  # UPI is India's
        {"payment_mix": {"eu": {"cheque": 1.0}}},
        {"payment_mix": {"eu": {"card": -1.0}}},
        {"payment_mix": {"eu": {"card": 0.0}}},
        {"payment_mix": {"eu": {"emi": 1.0}}, "emi_terms": {}},  # no bank offers EMI there
        {"upi_decline_share": 0.7, "upi_timeout_share": 0.5},
        {"return_share": 1.5},
        {"abandon_step_up_share": -0.1},
    ],
)
def test_nonsense_money_configurations_are_refused(bad: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"emi_terms": EMI, **bad}
    with pytest.raises(ValueError):
        SimulationConfig(**settings)
