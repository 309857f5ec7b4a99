"""Types shared by every event payload: constrained scalars, ``Money``, ``Address``, ``LineItem``.

Conventions (every domain module follows them):
- money is integer minor units plus an ISO-4217 code, never a float (no rounding drift
  between services, and the currency travels with the number);
- timestamps are timezone-aware datetimes (naive ones are rejected on validation);
- ids are opaque non-empty strings (usually :func:`schemas.ids.new_id` output);
- optional fields have defaults, so adding one later is a backward-compatible change;
- no street-level PII or contact details: the log is immutable and replicated, which
  would make GDPR/CCPA erasure impossible. Events carry ids; services look details up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "Address",
    "Channel",
    "CountryCode",
    "Currency",
    "Id",
    "LineItem",
    "Locale",
    "Money",
    "NonNegativeInt",
    "PaymentMethod",
    "Quantity",
    "RegionCode",
    "TaxRate",
    "Timestamp",
    "require_same_currency",
]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Currency = Annotated[
    str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO-4217 alphabetic code")
]
CountryCode = Annotated[
    str, msgspec.Meta(pattern="^[A-Z]{2}$", description="ISO-3166-1 alpha-2 code")
]
RegionCode = Annotated[
    str,
    msgspec.Meta(pattern="^[a-z][a-z0-9-]{1,15}$", description="Souk region, e.g. eu, us, in"),
]
Locale = Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}(-[A-Z]{2})?$", examples=["en-GB"])]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
TaxRate = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{1,2}(\.[0-9]{1,4})?$",
        description="a tax rate in percent, as a decimal string",
        examples=["19", "6.625"],
    ),
]

Channel = Literal["web", "ios", "android", "admin"]
PaymentMethod = Literal["card", "wallet", "emi", "upi", "net_banking", "cod", "gift_card"]


class Money(msgspec.Struct, frozen=True, kw_only=True):
    """An amount in integer minor units (cents, paise) of an ISO-4217 currency."""

    # Non-negative on purpose: direction lives in the event type (refund vs capture),
    # which removes a whole class of sign-convention bugs between services.
    amount_minor: NonNegativeInt
    currency: Currency


def require_same_currency(*amounts: Money | None) -> None:
    """Raise ValueError unless every given (non-None) amount has the same currency."""
    currencies = {amount.currency for amount in amounts if amount is not None}
    if len(currencies) > 1:
        raise ValueError(f"mixed currencies in one event: {sorted(currencies)}")


class Address(msgspec.Struct, frozen=True, kw_only=True):
    """A coarse delivery destination: enough for routing, tax and analytics, no street PII."""

    country: CountryCode
    subdivision: str | None = None  # state / province code, e.g. "KA", "CA"
    city: str | None = None
    postal_code: str | None = None
    # Reference to the full address in the User Service, for the few consumers (label
    # printing) entitled to read it.
    address_id: Id | None = None


class LineItem(msgspec.Struct, frozen=True, kw_only=True):
    """One purchasable line: a quantity of a seller's SKU at a unit price."""

    line_id: Id
    sku: Id
    product_id: Id
    seller_id: Id
    quantity: Quantity
    unit_price: Money
    # None until checkout reserves stock in a specific warehouse.
    warehouse_id: Id | None = None
    discount: Money | None = None  # total discount on this line, not per unit
    # The whole line's tax (None: not computed, e.g. before checkout), its rate in percent,
    # and whether it is inside the unit price (tax-inclusive regions) or added on top.
    tax: Money | None = None
    tax_rate: TaxRate | None = None
    tax_included: bool | None = None

    def __post_init__(self) -> None:
        require_same_currency(self.unit_price, self.discount, self.tax)
