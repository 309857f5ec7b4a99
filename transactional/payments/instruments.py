"""How a payment is paid, as the instrument token the checkout saga and the payment carry.

A card is its vault token (``tok_…``), unchanged. The other methods wrap it in a small,
durable grammar, so the choice survives a crash with the saga (``checkouts.instrument_token``)
and reaches the gateway router, which dispatches by it:

=====================================  ====================================================
``wallet:<customer_id>``               the customer's wallet pays it all
``split:<wallet_minor>:<card token>``  the wallet pays up to ``wallet_minor``, the card the rest
``emi:<months>:<bank>:<card token>``   the card pays, in instalments of a bank's plan
=====================================  ====================================================

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transactional.shared.errors import InvalidRequest

InstrumentKind = Literal["card", "wallet", "split", "emi"]
EMI_MONTHS: frozenset[int] = frozenset({3, 6, 12})


class InvalidInstrument(InvalidRequest):
    """The payment instrument is malformed (a bad split amount, EMI term or bank)."""

    code = "invalid_payment_method"


@dataclass(frozen=True)
class Instrument:
    """A parsed instrument token."""

    kind: InstrumentKind
    card_token: str | None = None
    customer_id: str | None = None  # the wallet's owner (wallet)
    wallet_minor: int = 0  # the most the wallet pays (split)
    emi_months: int | None = None
    emi_bank: str | None = None

    @property
    def method(self) -> Literal["card", "wallet", "emi"]:
        """The payment method recorded on the payment (a split is a wallet payment)."""
        if self.kind == "emi":
            return "emi"
        return "card" if self.kind == "card" else "wallet"


def wallet_token(customer_id: str) -> str:
    """The token of a customer's wallet."""
    _check_part(customer_id, "customer id")
    return f"wallet:{customer_id}"


def split_token(wallet_minor: int, card_token: str) -> str:
    """Pay up to ``wallet_minor`` from the wallet and the rest with the card."""
    if isinstance(wallet_minor, bool) or not isinstance(wallet_minor, int) or wallet_minor <= 0:
        raise InvalidInstrument(
            f"wallet_amount_minor must be a positive integer, got {wallet_minor!r}",
            field="wallet_amount_minor",
        )
    _check_part(card_token, "card token")
    return f"split:{wallet_minor}:{card_token}"


def emi_token(months: int, bank: str, card_token: str) -> str:
    """Pay with the card in ``months`` instalments of ``bank``'s plan."""
    if months not in EMI_MONTHS:
        raise InvalidInstrument(
            f"an EMI plan runs 3, 6 or 12 months, not {months!r}", field="emi.months"
        )
    _check_part(bank, "bank")
    _check_part(card_token, "card token")
    return f"emi:{months}:{bank.lower()}:{card_token}"


def parse_instrument(token: str) -> Instrument:
    """The instrument a token stands for (a plain card token for anything unwrapped)."""
    kind, sep, rest = token.partition(":")
    if not sep:
        return Instrument("card", card_token=token)
    if kind == "wallet" and rest:
        return Instrument("wallet", customer_id=rest)
    if kind == "split":
        amount, _, card = rest.partition(":")
        if amount.isdigit() and int(amount) > 0 and card:
            return Instrument("split", card_token=card, wallet_minor=int(amount))
    if kind == "emi":
        months, _, tail = rest.partition(":")
        bank, _, card = tail.partition(":")
        if months.isdigit() and int(months) in EMI_MONTHS and bank and card:
            return Instrument("emi", card_token=card, emi_months=int(months), emi_bank=bank)
    raise InvalidInstrument(f"malformed payment instrument {kind!r}")


def _check_part(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or ":" in value or len(value) > 100:
        raise InvalidInstrument(f"the {what} must be 1-100 characters without ':'")


def wallet_part(token: str, amount_minor: int) -> int:
    """How much of ``amount_minor`` a payment with this instrument takes from the wallet."""
    instrument = parse_instrument(token)
    if instrument.kind == "wallet":
        return amount_minor
    if instrument.kind == "split":
        return min(instrument.wallet_minor, amount_minor)
    return 0


def funding_parts(
    token: str, amount_minor: int, customer_id: str, card_gateway: str
) -> list[tuple[str, int]]:
    """The ledger funding of a capture: (account, amount) for the wallet and the card parts."""
    wallet = wallet_part(token, amount_minor)
    parts = [(f"wallet_liability:{customer_id}", wallet)] if wallet else []
    if amount_minor > wallet:
        parts.append((f"processor_clearing:{card_gateway}", amount_minor - wallet))
    return parts


def instrument_method(token: str) -> Literal["card", "wallet", "emi"]:
    """The payment method of an instrument token ("card" for anything not wrapped)."""
    try:
        return parse_instrument(token).method
    except InvalidInstrument:
        return "card"


def split_gateway(token: str, gateway: str) -> str:
    """The adapter a payment records: ``split`` for a split instrument (two legs, two
    gateways), ``wallet`` for a wallet one, else ``gateway``."""
    if token.startswith("split:"):
        return "split"
    return "wallet" if token.startswith("wallet:") else gateway
