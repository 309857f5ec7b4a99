"""The gateway router: one PaymentGateway that delegates each call to the adapter configured
for the payment's region and method (``SOUK_PAYMENT_ROUTES``).

An authorisation is routed by its instrument token (the method: card, wallet, split and EMI
tokens of ``instruments.py``, ``<method>:…`` tokens such as UPI's) and its currency (the region:
EUR → eu, USD → us, INR → in). Later calls name only a charge reference, so a reference says
which adapter made it: by a known prefix (wallet spends ``wsp_``, splits ``split:``, UPI
collects ``upi_``), else a charge of a card adapter other than the default one comes back
tagged ``@<adapter>:<reference>``. Lookups by idempotency key ask the adapters in turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from transactional.payments.instruments import parse_instrument
from transactional.payments.model import (
    PAYMENT_METHODS,
    Card,
    GatewayAuthorization,
    GatewayResult,
    GatewayTransaction,
    PaymentGateway,
)
from transactional.payments.threeds import NoActionPending
from transactional.payments.wallet_moves import region_of_currency

WALLET = "wallet"
SPLIT = "split"
ANY_REGION = "*"
# Reference prefixes that name their adapter (by the method whose adapter made them).
PREFIX_METHODS: dict[str, str] = {"split:": SPLIT, "wsp_": WALLET, "upi_": "upi"}


def parse_routes(value: str | Mapping[str, str]) -> dict[tuple[str, str], str]:
    """``"eu.card=sandbox,*.wallet=wallet"`` (or a mapping of the same keys) as a table of
    (region, method) → adapter name; ValueError for a malformed entry."""
    items = (
        value.items()
        if isinstance(value, Mapping)
        else (part.strip().partition("=")[::2] for part in value.split(",") if part.strip())
    )
    routes: dict[tuple[str, str], str] = {}
    for key, adapter in items:
        region, dot, method = key.strip().partition(".")
        if not dot or not region or not method or not adapter.strip():
            raise ValueError(f"payment route {key}={adapter} is not <region>.<method>=<adapter>")
        routes[(region.lower(), method.lower())] = adapter.strip()
    return routes


class PaymentRouter:
    """A PaymentGateway delegating to named adapters by region and method."""

    def __init__(
        self,
        adapters: Mapping[str, PaymentGateway],
        routes: Mapping[tuple[str, str], str],
        *,
        default: str,
        default_region: str = "eu",
    ) -> None:
        unknown = sorted({name for name in routes.values() if name not in adapters})
        if default not in adapters or unknown:
            raise ValueError(
                f"payment routes name unknown adapters {unknown or [default]}; "
                f"known: {', '.join(sorted(adapters))}"
            )
        self._adapters = dict(adapters)
        self._routes = dict(routes)
        self._default = default
        self._default_region = default_region

    def register(self, name: str, adapter: PaymentGateway) -> None:
        """Add an adapter (e.g. the split one, which itself pays through this router)."""
        self._adapters[name] = adapter

    @property
    def name(self) -> str:
        """The default (card) adapter's name, as payments record it."""
        return self._adapters[self._default].name

    def route(self, region: str, method: str) -> str:
        """The adapter name for a region and method (``*`` entries match any region)."""
        return (
            self._routes.get((region, method))
            or self._routes.get((ANY_REGION, method))
            or (WALLET if method == WALLET else SPLIT if method == SPLIT else self._default)
        )

    def name_for(self, method: str, region: str | None = None) -> str:
        """The name of the adapter a payment of ``method`` goes through (in ``region``)."""
        return self._adapters[self.route(region or self._default_region, method)].name

    def adapter(self, name: str) -> PaymentGateway:
        """An adapter by name."""
        return self._adapters[name]

    def _for_token(self, token: str, currency: str | None) -> tuple[str, PaymentGateway, str]:
        """(adapter name, adapter, the token it takes) for an instrument token."""
        region = region_of_currency(currency or "", self._default_region)
        prefix = token.partition(":")[0]
        if prefix in PAYMENT_METHODS and prefix not in ("card", "wallet", "emi"):
            name = self.route(region, prefix)  # e.g. upi:<vpa>, the adapter's own token
            return name, self._adapters[name], token
        instrument = parse_instrument(token)
        method = {"split": SPLIT, "wallet": WALLET}.get(instrument.kind, instrument.method)
        name = self.route(region, method)
        inner = token if instrument.kind in ("wallet", "split") else instrument.card_token
        assert inner is not None
        return name, self._adapters[name], inner

    def _for_reference(self, reference: str) -> tuple[PaymentGateway, str]:
        for prefix, method in PREFIX_METHODS.items():
            if reference.startswith(prefix):
                name = self.route(self._default_region, method)
                if name in self._adapters:
                    return self._adapters[name], reference
        if reference.startswith("@"):
            name, _, inner = reference[1:].partition(":")
            if name in self._adapters:
                return self._adapters[name], inner
        return self._adapters[self._default], reference

    def _tagged(self, name: str, result: GatewayAuthorization) -> GatewayAuthorization:
        if name == self._default or result.reference.startswith(tuple(PREFIX_METHODS)):
            return result
        return replace(result, reference=f"@{name}:{result.reference}")

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Vault a card at the default card adapter."""
        return self._adapters[self._default].tokenize(card, owner)

    def owner_of(self, token: str) -> str | None:
        """The owner of an instrument (its card's, or the wallet's)."""
        _, adapter, inner = self._for_token(token, None)
        return adapter.owner_of(inner)

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Authorise at the adapter routed for the instrument and the currency's region."""
        name, adapter, inner = self._for_token(token, currency)
        result = adapter.authorize(inner, amount_minor, currency, idempotency_key, owner=owner)
        return self._tagged(name, result)

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Capture at the adapter that made the charge."""
        adapter, inner = self._for_reference(reference)
        return replace(adapter.capture(inner, amount_minor, idempotency_key), reference=reference)

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Void at the adapter that made the charge."""
        adapter, inner = self._for_reference(reference)
        return replace(adapter.void(inner, idempotency_key), reference=reference)

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Refund at the adapter that made the charge."""
        adapter, inner = self._for_reference(reference)
        return replace(adapter.refund(inner, amount_minor, idempotency_key), reference=reference)

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The first adapter's record of the key (our own stores first, then the processors)."""
        seen: set[int] = set()
        names = [SPLIT, WALLET, self._default, *sorted(self._adapters)]
        for name in names:
            adapter = self._adapters.get(name)
            if adapter is None or id(adapter) in seen:
                continue
            seen.add(id(adapter))
            found = adapter.lookup(idempotency_key)
            if found is not None:
                if isinstance(found, GatewayAuthorization):
                    return self._tagged(name, found)
                return found
        return None

    # -- payer actions (3-D Secure, UPI collects), forwarded to the charge's adapter --------

    def _acting(self, reference: str, method: str) -> tuple[Any, str]:
        adapter, inner = self._for_reference(reference)
        if not callable(getattr(adapter, method, None)):
            raise NoActionPending(f"charge {reference} waits on nobody")
        return adapter, inner

    def action_outcome(self, reference: str) -> GatewayAuthorization:
        """Where a waiting authorisation stands now."""
        adapter, inner = self._acting(reference, "action_outcome")
        return self._retagged(reference, adapter.action_outcome(inner))

    def cancel_action(self, reference: str) -> GatewayAuthorization:
        """Stop waiting for the payer."""
        adapter, inner = self._acting(reference, "cancel_action")
        return self._retagged(reference, adapter.cancel_action(inner))

    def confirm_challenge(self, reference: str, approve: bool = True) -> GatewayAuthorization:
        """The payer's answer to a card's 3-D Secure challenge (test mode)."""
        adapter, inner = self._acting(reference, "confirm_challenge")
        return self._retagged(reference, adapter.confirm_challenge(inner, approve))

    @staticmethod
    def _retagged(reference: str, result: GatewayAuthorization) -> GatewayAuthorization:
        return replace(result, reference=reference)
