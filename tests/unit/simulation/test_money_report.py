"""The report's money counters and table, and the runner's payment bodies and addresses."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console

from souk.simulation import (
    PaymentPlan,
    SimulationConfig,
    SimulationReport,
    money_table,
    report_tables,
)
from souk.simulation.model import SessionPlan
from souk.simulation.runner import (
    ADDRESS_BOOK,
    THREE_DS_CARD,
    UPI_VPAS,
    Simulation,
    address_of,
)
from tests.unit.simulation.test_money_plans import EMI
from tests.unit.test_simulate import catalog


def text_of(*tables: object) -> str:
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_paid_checkouts_count_per_stored_method_a_split_being_a_wallet_payment() -> None:
    report = SimulationReport()
    report.payments.update(
        {
            ("card", "paid"): 5,
            ("card_3ds", "paid"): 2,
            ("card_3ds", "abandoned"): 3,
            ("split", "paid"): 1,
            ("wallet", "paid"): 2,
            ("emi", "declined"): 1,
            ("emi", "paid"): 4,
            ("upi", "expired"): 2,
            ("upi", "paid"): 3,
        }
    )
    assert report.paid_by_method() == Counter({"card": 7, "wallet": 3, "emi": 4, "upi": 3})


def test_the_money_table_shows_methods_outcomes_top_ups_step_ups_upi_and_returns() -> None:
    report = SimulationReport()
    report.payments.update({("upi", "paid"): 3, ("upi", "declined"): 1, ("card", "paid"): 2})
    report.topups, report.topups_separate = 4, 1
    report.topped_up_minor.update({"EUR": 12000, "INR": 500000})
    report.step_ups_confirmed, report.step_ups_abandoned = 2, 1
    report.upi_approved, report.upi_declined, report.upi_expired = 3, 1, 2
    report.returns_requested, report.returns_refunded, report.returns_refused = 3, 2, 1
    report.refunded_minor.update({"EUR": 4599})
    printed = text_of(money_table(report))
    assert "paid by upi" in printed and "declined 1, paid 3" in printed
    assert "4 (1) / 0" in printed and "120.00 EUR, 5,000.00 INR" in printed
    assert "2 / 1" in printed and "3 / 1 / 2 / 0" in printed
    assert "3 / 1 / 2" in printed and "45.99 EUR" in printed
    # Shown among the run's tables once money moved, not before.
    assert len(report_tables(report)) == 3
    assert len(report_tables(SimulationReport())) == 2


def test_us_shoppers_live_in_states_the_others_at_their_countrys_address() -> None:
    states = {address_of("US", n)["subdivision"] for n in range(6)}
    assert states == {"TX", "CA", "NY"}
    assert address_of("DE", 3) == ADDRESS_BOOK["DE"] and "subdivision" not in ADDRESS_BOOK["DE"]
    assert address_of("US", 0) is not ADDRESS_BOOK["US"]  # a copy


def _simulation() -> Simulation:
    config = SimulationConfig(users=3, seed=1, emi_terms=EMI)
    return Simulation("http://souk.test", catalog(), config, show_progress=False, tag="t")


def _plan(**money: Any) -> SessionPlan:
    return _simulation().model.session(0).paying(PaymentPlan(**money))


def test_each_method_sends_its_payment_method_body() -> None:
    simulation = _simulation()
    profile = simulation.model.profiles[0]
    plan = _plan(payment="emi", emi_bank="ing", emi_months=6)
    card = simulation.own_card(profile, "ok")
    assert simulation.payment_method(plan, profile, "card", "ok") == card
    assert simulation.payment_method(plan, profile, "wallet", "ok") == {"type": "wallet"}
    split = simulation.payment_method(plan, profile, "split", "ok", 1234)
    assert split == {**card, "wallet_amount_minor": 1234}
    assert simulation.payment_method(plan, profile, "emi", "ok") == {
        "type": "emi",
        "card": card["card"],
        "emi": {"months": 6, "bank": "ing"},
    }
    stepped = simulation.payment_method(plan, profile, "card_3ds", "ok")
    assert stepped["card"]["number"] == THREE_DS_CARD
    assert stepped["card"]["exp_year"] == card["card"]["exp_year"]  # the shopper's expiry
    # A failing card stays the failing card, whatever the method around it.
    failing = simulation.payment_method(plan, profile, "card_3ds", "declined")
    assert failing == simulation.own_card(profile, "declined")


def test_upi_payers_pay_from_their_own_vpa_or_the_sandboxs_declining_and_silent_ones() -> None:
    simulation = _simulation()
    profile = simulation.model.profiles[1]
    approving = simulation.payment_method(
        _plan(payment="upi", upi_answer="approve"), profile, "upi", "ok"
    )
    assert approving["type"] == "upi" and approving["vpa"].endswith("@oksouk")
    assert approving["vpa"] not in UPI_VPAS.values()
    for answer, vpa in UPI_VPAS.items():
        plan = _plan(payment="upi", upi_answer=answer)
        assert simulation.payment_method(plan, profile, "upi", "ok") == {"type": "upi", "vpa": vpa}
