"""Request and response bodies of the customer API (msgspec structs at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from schemas.common import CountryCode, Currency, Locale, RegionCode
from transactional.customers.model import Address, Customer

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RegisterCustomer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/customers."""

    email: Email
    password: Password
    name: Text
    region: RegionCode
    locale: Locale = "en"
    currency: Currency
    country: CountryCode | None = None
    marketing_opt_in: bool = False


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/auth/token: credentials, plus the guest cart to merge into the customer's."""

    email: Email
    password: Password
    guest_cart_id: str | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    """A bearer token, when it expires, and the customer's cart after the merge."""

    access_token: str
    token_type: str
    expires_at: datetime
    customer_id: str
    cart_id: str | None = None


class AddressIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/customers/me/addresses."""

    full_name: Text
    line1: Text
    city: Text
    postal_code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    country: CountryCode
    line2: Text | None = None
    subdivision: Annotated[str, msgspec.Meta(max_length=10)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    is_default: bool = False


class AddressOut(msgspec.Struct, kw_only=True):
    """A saved address."""

    address_id: str
    full_name: str
    line1: str
    line2: str | None
    city: str
    subdivision: str | None
    postal_code: str
    country: str
    phone: str | None
    is_default: bool

    @classmethod
    def of(cls, address: Address) -> AddressOut:
        """The response body of a domain address."""
        return cls(
            address_id=address.address_id,
            full_name=address.full_name,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            subdivision=address.subdivision,
            postal_code=address.postal_code,
            country=address.country,
            phone=address.phone,
            is_default=address.is_default,
        )


class CustomerOut(msgspec.Struct, kw_only=True):
    """A customer's own profile (never the password hash)."""

    customer_id: str
    email: str
    name: str
    region: str
    country: str
    locale: str
    currency: str
    created_at: datetime
    addresses: list[AddressOut]

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        """The response body of a domain customer."""
        return cls(
            customer_id=customer.customer_id,
            email=customer.email,
            name=customer.name,
            region=customer.region,
            country=customer.country,
            locale=customer.locale,
            currency=customer.currency,
            created_at=customer.created_at,
            addresses=[AddressOut.of(a) for a in customer.addresses],
        )
