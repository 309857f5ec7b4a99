"""The demo summary's lines: what the checkout's fraud screen decided on the simulated run,
against the simulator's labels (caught, missed, false alarms)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, text

FLAGGED = ("review", "decline")


class Label(Protocol):
    """A fraud label of the simulator (``souk.simulation.report.FraudLabel``)."""

    @property
    def customer_id(self) -> str:
        """The labelled account."""
        ...

    @property
    def kinds(self) -> tuple[str, ...]:
        """The fraud patterns of its session."""
        ...


@dataclass
class ScreenOutcome:
    """The screen's decisions on a run, per checkout and per account."""

    decisions: Counter[tuple[bool, str]] = field(default_factory=Counter)  # (fraud?, decision)
    caught: set[str] = field(default_factory=set)  # labelled accounts flagged at least once
    missed: set[str] = field(default_factory=set)  # labelled accounts never flagged
    false_alarms: set[str] = field(default_factory=set)  # unlabelled accounts flagged
    honest: set[str] = field(default_factory=set)  # unlabelled accounts screened
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)  # kind → caught/missed


def screen_outcome(rows: Iterable[tuple[str, str]], labels: Sequence[Label]) -> ScreenOutcome:
    """The outcome of (customer_id, decision) rows, one per screened checkout."""
    labelled = {label.customer_id: label for label in labels if label.customer_id}
    outcome = ScreenOutcome()
    flagged: set[str] = set()
    seen: set[str] = set()
    for customer_id, decision in rows:
        fraud = customer_id in labelled
        outcome.decisions[(fraud, decision)] += 1
        seen.add(customer_id)
        if decision in FLAGGED:
            flagged.add(customer_id)
    for customer_id in seen:
        if customer_id in labelled:
            (outcome.caught if customer_id in flagged else outcome.missed).add(customer_id)
            for kind in labelled[customer_id].kinds:
                verdict = "caught" if customer_id in flagged else "missed"
                outcome.by_kind.setdefault(kind, Counter())[verdict] += 1
        else:
            outcome.honest.add(customer_id)
            if customer_id in flagged:
                outcome.false_alarms.add(customer_id)
    return outcome


def screened_checkouts(engine: Engine, since: datetime) -> list[tuple[str, str]]:
    """(customer_id, decision) of every checkout screened since ``since``."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT customer_id, fraud->>'decision' FROM checkouts "
                "WHERE created_at >= :since AND fraud IS NOT NULL ORDER BY created_at"
            ),
            {"since": since},
        )
        return [(str(customer), str(decision)) for customer, decision in rows]


def demo_lines(engine: Engine, labels: Sequence[Label], since: datetime) -> list[str]:
    """The summary's fraud-screen lines for a run that started at ``since`` (labels: the
    simulator's ``report.fraud_labels``)."""
    outcome = screen_outcome(screened_checkouts(engine, since), labels)
    labelled = len(outcome.caught) + len(outcome.missed)
    d = outcome.decisions
    lines = [
        "fraud screen at checkout (decisions per checkout: approve / review / decline)",
        f"  labelled fraud-like: {d[(True, 'approve')]} / {d[(True, 'review')]} / "
        f"{d[(True, 'decline')]}",
        f"  other shoppers:      {d[(False, 'approve')]} / {d[(False, 'review')]} / "
        f"{d[(False, 'decline')]}",
        f"  accounts: caught {len(outcome.caught)} of {labelled} labelled, missed "
        f"{len(outcome.missed)}, false alarms {len(outcome.false_alarms)} of "
        f"{len(outcome.honest)} other accounts",
    ]
    for kind in sorted(outcome.by_kind):
        counts = outcome.by_kind[kind]
        lines.append(
            f"  {kind}: caught {counts['caught']} of {counts['caught'] + counts['missed']}"
        )
    return lines
