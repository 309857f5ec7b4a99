"""Housekeeping beside `souk serve`: every task runs, repeats, and survives its own errors."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from souk.background import Housekeeper, PeriodicTask, housekeeping_tasks
from souk.settings import Settings


def test_tasks_run_at_once_repeat_and_survive_errors() -> None:
    runs: dict[str, int] = {"ok": 0, "boom": 0}
    both_repeated = threading.Event()

    def ok() -> None:
        runs["ok"] += 1
        if runs["ok"] >= 3 and runs["boom"] >= 3:
            both_repeated.set()

    def boom() -> None:
        runs["boom"] += 1
        raise RuntimeError("a failing task must not stop the others")

    keeper = Housekeeper([PeriodicTask("ok", 0.01, ok), PeriodicTask("boom", 0.01, boom)])
    keeper.start()
    try:
        assert both_repeated.wait(5), runs
    finally:
        keeper.stop()


def test_serve_recovers_sagas_expires_reservations_and_repairs_counters() -> None:
    settings = Settings(_env_file=None, saga_recovery_after_s=30, reservation_ttl_s=900)  # type: ignore[call-arg]
    called: list[str] = []
    report = SimpleNamespace(drifted=2, checked=10, repaired=2)
    provided: dict[str, Any] = {
        "checkout": SimpleNamespace(recover=lambda: called.append("recover")),
        "orders": SimpleNamespace(finish_pending_cancellations=lambda: called.append("finish")),
        "inventory": SimpleNamespace(
            release_expired=lambda: called.append("expire"),
            reconcile=lambda repair: called.append(f"reconcile repair={repair}") or report,
        ),
    }
    tasks = housekeeping_tasks(_Services(settings, provided))  # type: ignore[arg-type]
    assert [(t.name, t.every_s) for t in tasks] == [
        ("checkout.recover", 15.0),
        ("inventory.release_expired", 5.0),
        ("orders.finish_pending_cancellations", 60.0),
        ("inventory.reconcile", 60.0),
    ]
    results = [task.run() for task in tasks]
    assert called == ["recover", "expire", "finish", "reconcile repair=True"]
    assert results[3] == "2 of 10 counters had drifted; 2 repaired"


class _Services:
    def __init__(self, settings: Settings, provided: dict[str, Any]) -> None:
        self.settings = settings
        self.provided = provided

    def __getitem__(self, name: str) -> Any:
        return self.provided[name]
