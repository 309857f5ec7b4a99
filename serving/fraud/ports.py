"""The fraud scorer's ports: stored signals, the promoted model, the paying account."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from serving.fraud.model import Account, FraudModel, ScoreRequest, Signals


class SignalStore(Protocol):
    """Reads the stored fraud signals of a request's entities (the Feast online store)."""

    def read(self, request: ScoreRequest, extra_refs: Sequence[str] = ()) -> Signals:
        """The rules' features and ``extra_refs`` (``view:feature``) of the request's
        customer, instrument, device and IP; ``Signals(available=False)`` if unreadable."""


class ModelSource(Protocol):
    """The promoted fraud model, reloaded when another version is promoted."""

    def current(self) -> FraudModel | None:
        """The model to use now (None: nothing promoted; the rules decide alone)."""


class Accounts(Protocol):
    """The paying account's home region and creation time."""

    def account(self, customer_id: str) -> Account:
        """What is known of ``customer_id`` (unknown fields None for an unknown account)."""
