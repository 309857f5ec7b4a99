"""The scorer's pure parts: request-time features, rules, their score, the model's share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from serving.fraud.demo import screen_outcome
from serving.fraud.model import (
    Account,
    Item,
    ScoreRequest,
    Signals,
    Thresholds,
    assess,
    rules_score,
)
from souk.simulation.report import FraudLabel

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOME = Account("eu", NOW - timedelta(days=400))
DEFAULTS = Thresholds(0.65, 0.9)


def request(**changes: object) -> ScoreRequest:
    fields: dict[str, object] = {
        "customer_id": "cus_1",
        "amount_minor": 5000,
        "currency": "EUR",
        "items": (Item("sku", 1, 5000),),
        "ship_region": "eu",
        "ip_region": "eu",
    }
    fields.update(changes)
    return ScoreRequest(**fields)  # type: ignore[arg-type]


def signals(view: str, age: timedelta, **values: float) -> Signals:
    return Signals(
        values={f"{view}__{name}": value for name, value in values.items()},
        stamps={view: NOW - age},
    )


def test_a_quiet_order_is_approved_with_no_reason() -> None:
    result = assess(request(), HOME, Signals(), None, DEFAULTS, NOW)
    assert (result.decision, result.score, result.reasons) == ("approve", 0.0, [])


def test_velocity_counts_this_order_and_forgets_stale_rows() -> None:
    fresh = signals("customer_fraud_signals", timedelta(seconds=10), orders_1m=2, orders_1h=2)
    stale = signals("customer_fraud_signals", timedelta(minutes=5), orders_1m=2, orders_1h=2)
    assert assess(request(), HOME, fresh, None, DEFAULTS, NOW).rules == ("velocity",)
    kept = assess(request(), HOME, stale, None, DEFAULTS, NOW)
    assert kept.rules == () and kept.features["orders_1m"] == 1 and kept.features["orders_1h"] == 3


def test_amount_outlier_needs_enough_earlier_orders() -> None:
    history = dict(orders_24h=5, amount_mean_minor=4000.0, amount_std_minor=500.0)
    many = signals("customer_fraud_signals", timedelta(hours=1), **history)
    few = signals("customer_fraud_signals", timedelta(hours=1), **{**history, "orders_24h": 2})
    big = request(amount_minor=40_000)
    assert "amount_outlier" in assess(big, HOME, many, None, DEFAULTS, NOW).rules
    assert "amount_outlier" not in assess(big, HOME, few, None, DEFAULTS, NOW).rules


def test_rules_add_up_as_independent_evidence() -> None:
    assert rules_score(()) == 0.0
    assert rules_score(("velocity",)) == 0.45
    assert rules_score(("velocity", "ship_region_mismatch")) == round(1 - 0.55 * 0.55, 4)
    abroad = request(ship_region="in", ip_region="us", items=(Item("sku", 12, 400),))
    result = assess(abroad, HOME, Signals(), None, DEFAULTS, NOW)
    assert result.rules == ("bulk_quantity", "ship_region_mismatch", "ip_region_mismatch")
    assert result.decision == "review"


def test_a_new_account_is_aged_from_its_creation() -> None:
    new = Account("eu", NOW - timedelta(minutes=5))
    result = assess(request(amount_minor=60_000), new, Signals(), None, DEFAULTS, NOW)
    assert result.rules == ("new_account_high_value",) and result.features["account_age_s"] == 300
    assert result.decision == "approve"  # one weak rule passes the default thresholds


def test_thresholds_are_checked_and_decide() -> None:
    with pytest.raises(ValueError):
        Thresholds(0.9, 0.5)
    assert [DEFAULTS.decide(s) for s in (0.2, 0.65, 0.95)] == ["approve", "review", "decline"]


class StepModel:
    """A model port stand-in: fraud probability 0.9 when total_minor is high, else 0.1
    (0.5 when the total is missing)."""

    version = "v-test"
    features: Sequence[str] = ("total_minor", "units")
    feature_refs: Sequence[str] = ()

    def predict(self, rows: Sequence[Mapping[str, float | None]]) -> list[float]:
        out = []
        for row in rows:
            total = row.get("total_minor")
            out.append(0.5 if total is None else 0.9 if total > 10_000 else 0.1)
        return out


def test_the_model_score_and_its_top_feature_by_contribution() -> None:
    result = assess(request(amount_minor=50_000), HOME, Signals(), StepModel(), DEFAULTS, NOW)
    assert (result.model_score, result.model_version, result.decision) == (0.9, "v-test", "decline")
    (top,) = result.top_features
    assert (top.feature, top.value, top.contribution) == ("total_minor", 50_000.0, 0.4)
    assert result.reasons == ["model:total_minor+0.400"]


def test_unavailable_signals_are_said() -> None:
    result = assess(request(), HOME, Signals(available=False), None, DEFAULTS, NOW)
    assert result.decision == "approve" and result.reasons == ["signals_unavailable"]


def test_demo_outcome_counts_caught_missed_and_false_alarms() -> None:
    labels = [
        FraudLabel(1, "cus_bad1", ("burst",)),
        FraudLabel(2, "cus_bad2", ("shared_card", "far_shipping")),
    ]
    rows = [
        ("cus_bad1", "approve"),
        ("cus_bad1", "review"),
        ("cus_bad2", "approve"),
        ("cus_ok1", "approve"),
        ("cus_ok2", "decline"),
    ]
    outcome = screen_outcome(rows, labels)
    assert (outcome.caught, outcome.missed, outcome.false_alarms) == (
        {"cus_bad1"},
        {"cus_bad2"},
        {"cus_ok2"},
    )
    assert outcome.decisions[(True, "approve")] == 2 and outcome.decisions[(False, "decline")] == 1
    assert outcome.by_kind["shared_card"]["missed"] == 1
    assert outcome.by_kind["burst"]["caught"] == 1
