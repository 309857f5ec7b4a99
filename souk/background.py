"""Housekeeping that runs beside the HTTP server: stale sagas, expired reservations, the relay.

Each task is safe to run in several processes at once (row leases, ``SKIP LOCKED``, the relay's
leadership lock), so `souk serve` can start as many replicas as a deployment wants.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from souk.services import Services
from transactional.checkout.service import CheckoutService
from transactional.inventory.service import InventoryService
from transactional.orders.service import OrderService

_LOG = logging.getLogger("souk.background")


@dataclass(frozen=True)
class PeriodicTask:
    """A callable run every ``every_s`` seconds; its errors are logged, never fatal."""

    name: str
    every_s: float
    run: Callable[[], object]


def housekeeping_tasks(services: Services) -> list[PeriodicTask]:
    """Saga recovery, reservation expiry and stock-counter repair, at their own paces."""
    settings = services.settings
    checkout: CheckoutService = services["checkout"]
    inventory: InventoryService = services["inventory"]
    orders: OrderService = services["orders"]
    tasks = [
        # First run at start-up: sagas a crashed process left behind are taken over at once.
        PeriodicTask(
            "checkout.recover", max(settings.saga_recovery_after_s / 2, 0.5), checkout.recover
        ),
        PeriodicTask(
            "inventory.release_expired",
            min(max(settings.reservation_ttl_s / 4, 0.5), 5.0),
            inventory.release_expired,
        ),
        # A cancel whose void/refund failed stays pending (blocking shipment): finish it.
        PeriodicTask(
            "orders.finish_pending_cancellations", 60.0, orders.finish_pending_cancellations
        ),
        # Redis counters drift after crashes; PostgreSQL is the truth, so repair from it.
        PeriodicTask("inventory.reconcile", 60.0, lambda: _reconcile(inventory)),
    ]
    returns = services.provided.get("returns")
    if returns is not None:
        # A received return whose restock or refund a crash left unfinished: finish it.
        after = settings.returns_retry_after_s
        tasks.append(
            PeriodicTask(
                "returns.finish_unfinished",
                min(after / 2, 60.0),
                lambda: returns.finish_unfinished(older_than_s=after),
            )
        )
    wallet = services.provided.get("wallet")
    if wallet is not None:
        # A top-up whose card was charged but whose credit a crash (or an unretried timeout)
        # left pending: finish it, so money taken always reaches the wallet.
        tasks.append(PeriodicTask("wallet.resume_top_ups", 30.0, wallet.resume_pending))
    return tasks


def _reconcile(inventory: InventoryService) -> str | None:
    """Repair Redis from PostgreSQL; a log line only when counters had drifted."""
    report = inventory.reconcile(repair=True)
    if not report.drifted:
        return None
    return f"{report.drifted} of {report.checked} counters had drifted; {report.repaired} repaired"


class Housekeeper:
    """Runs periodic tasks on one daemon thread until stopped."""

    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self._tasks = tasks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="souk-housekeeping", daemon=True)

    def start(self) -> None:
        """Start the loop (tasks run once immediately)."""
        if self._tasks:
            self._thread.start()

    def stop(self) -> None:
        """Ask the loop to finish and wait briefly for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        due = dict.fromkeys((task.name for task in self._tasks), 0.0)
        clock = 0.0
        tick = min(task.every_s for task in self._tasks)
        while not self._stop.is_set():
            for task in self._tasks:
                if due[task.name] <= clock:
                    self._run(task)
                    due[task.name] = clock + task.every_s
            if self._stop.wait(tick):
                return
            clock += tick

    @staticmethod
    def _run(task: PeriodicTask) -> None:
        try:
            result = task.run()
        except Exception:
            _LOG.exception("%s failed; retrying next round", task.name)
            return
        if result:
            _LOG.info("%s: %s", task.name, result)
