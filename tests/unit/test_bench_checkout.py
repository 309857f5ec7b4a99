"""The checkout benchmark's money comparison: its command line, round order, switches and
the figures it reports (the measuring itself needs servers: `make bench-checkout`)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.checkout_money import (
    InvoiceProgress,
    MoneyTrace,
    database_url_named,
    money_environment,
    ratio,
    ratio_text,
    redis_url_db,
    schedule,
    wait_until,
)
from bench.checkout_throughput import MoneyFigures, Round, combined, parse_args


def test_the_defaults_keep_the_old_rounds_and_add_three_money_pairs() -> None:
    args = parse_args([])
    assert (args.clients, args.seconds, args.json) == (8, 10.0, None)
    assert (args.money_pairs, args.money_seconds, args.money_only) == (3, 10.0, False)


def test_money_seconds_follow_seconds_unless_given() -> None:
    assert parse_args(["--seconds", "4"]).money_seconds == 4.0
    assert parse_args(["--seconds", "4", "--money-seconds", "6"]).money_seconds == 6.0


@pytest.mark.parametrize("argv", [["--money-pairs", "-1"], ["--money-only", "--money-pairs", "0"]])
def test_impossible_money_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2


def test_rounds_alternate_abba_so_a_drift_weighs_on_both() -> None:
    assert schedule(0) == []
    assert schedule(1) == ["on", "off"]
    assert schedule(3) == ["on", "off", "off", "on", "on", "off"]
    assert schedule(4).count("on") == schedule(4).count("off") == 4


def test_the_switches_turn_all_three_on_or_all_three_off() -> None:
    names = {"SOUK_TAX_ENABLED", "SOUK_LEDGER_HOT_PATH", "SOUK_INVOICES_ENABLED"}
    assert money_environment("on") == dict.fromkeys(names, "true")
    assert money_environment("off") == dict.fromkeys(names, "false")


def test_ratio_and_its_text() -> None:
    assert ratio(80.0, 100.0) == pytest.approx(0.8)
    assert ratio(5.0, 0.0) == 0.0
    assert ratio_text(80.0, 100.0) == "0.80x (-20 %)"
    assert ratio_text(150.0, 100.0) == "1.50x (+50 %)"
    assert ratio_text(1.0, 0.0) == "-"


def test_twin_databases_and_valkey_databases_on_the_same_servers() -> None:
    url = "postgresql+psycopg://souk:secret@127.0.0.1:5433/souk"
    assert (
        database_url_named(url, "souk_money_on")
        == "postgresql+psycopg://souk:secret@127.0.0.1:5433/souk_money_on"
    )
    assert redis_url_db("redis://127.0.0.1:6390/0", 2) == "redis://127.0.0.1:6390/2"
    assert redis_url_db("redis://127.0.0.1:6390", 1) == "redis://127.0.0.1:6390/1"


def test_backlog_is_paid_orders_without_an_invoice() -> None:
    assert InvoiceProgress(paid=10, invoiced=7).backlog == 3


def test_wait_until_reports_whether_it_settled() -> None:
    answers = iter([False, False, True])
    settled, _waited = wait_until(lambda: next(answers), timeout_s=5.0, poll_s=0.001)
    assert settled
    settled, waited = wait_until(lambda: False, timeout_s=0.01, poll_s=0.001)
    assert not settled and waited >= 0.01


def _round(orders: int, seconds: float, ms: list[float], *, five_xx: int = 0) -> Round:
    result = Round(4, seconds=seconds, orders=orders, five_xx=five_xx)
    result.checkout_ms = list(ms)
    result.add_ms = [1.0] * len(ms)
    result.cpu_s = {"server": orders * 0.02}
    result.other_failures = Counter({"checkout 422 x": 1})
    return result


def test_combined_rounds_add_orders_seconds_samples_and_cpu() -> None:
    total = combined([_round(30, 3.0, [10.0, 20.0]), _round(50, 2.0, [30.0])])
    assert (total.clients, total.orders, total.seconds) == (4, 80, 5.0)
    assert total.orders_per_s == pytest.approx(16.0)
    assert sorted(total.checkout_ms) == [10.0, 20.0, 30.0]
    assert total.cpu_ms_per_order() == {"server": pytest.approx(20.0)}
    assert total.other_failures["checkout 422 x"] == 2


ON = MoneyTrace(order_lines=80, taxed_lines=80, ledger_transactions=80, invoices=80)
OFF = MoneyTrace(order_lines=120, taxed_lines=0, ledger_transactions=0, invoices=0)


def _money(**changes: object) -> MoneyFigures:
    figures = MoneyFigures(
        schedule=["on", "off", "off", "on"],
        seconds=2.0,
        rounds={
            "on": [_round(40, 2.0, [10.0]), _round(40, 2.0, [30.0])],
            "off": [_round(60, 2.0, [5.0]), _round(60, 2.0, [15.0])],
        },
        traces={"on": ON, "off": OFF},
        paid_orders=80,
        invoices=80,
        invoice_backlog=0,
        backlog_at_round_end=[3, 0],
        drain_s=[0.5, 0.5],
        invoice_lags_s=[0.1, 0.2, 0.9],
        ledger_violations=[],
    )
    for name, value in changes.items():
        setattr(figures, name, value)
    return figures


def test_the_report_sets_on_beside_off_with_their_ratio() -> None:
    report = _money().report()
    assert report["on"]["orders_per_s"] == 20.0 and report["off"]["orders_per_s"] == 30.0
    assert report["orders_per_s_ratio"] == pytest.approx(0.667)
    assert report["on"]["rounds_orders_per_s"] == [20.0, 20.0]
    assert report["checkout_p50_ratio"] == pytest.approx(2.0)  # 30 ms vs 15 ms (nearest rank)
    # 80 orders over 4 s of rounds and 1 s of the invoices catching up
    assert report["on_orders_per_s_with_invoice_drain"] == 16.0
    assert report["invoices"]["issued"] == 80 and report["invoices"]["lag_max_s"] == 0.9
    assert report["ledger_check"] == {"passed": True, "violations": 0, "first": []}
    assert report["on"]["database"]["taxed_lines"] == 80
    assert report["ok"] is True


@pytest.mark.parametrize(
    "changes",
    [
        {"ledger_violations": ["order o-1 EUR expected 100, found 0"]},
        {"invoice_backlog": 2},
        {"traces": {"on": ON, "off": MoneyTrace(1, 1, 0, 0)}},  # "off" still taxed
        {"traces": {"on": MoneyTrace(1, 1, 0, 1), "off": OFF}},  # "on" booked nothing
    ],
)
def test_a_failed_check_or_an_ignored_switch_fails_the_comparison(
    changes: dict[str, object],
) -> None:
    assert _money(**changes).ok is False


def test_a_server_error_fails_the_comparison_and_a_timed_out_drain_is_reported() -> None:
    figures = _money(drain_s=[None, 0.5])
    figures.rounds["off"].append(_round(1, 1.0, [1.0], five_xx=1))
    assert figures.five_xx == 1 and not figures.ok
    assert figures.report()["invoices"]["drain_s"] == [None, 0.5]
