"""Customers domain (aggregate ``customer``): account lifecycle.

No name, e-mail or phone: consumers (notifications) fetch contact details from the User
Service at send time, so an erasure request never has to rewrite the event log.
"""

from __future__ import annotations

import msgspec

from schemas.common import Channel, CountryCode, Id, Locale, RegionCode
from schemas.spec import EventSpec

__all__ = ["SPECS", "AddressAdded", "UserRegistered"]


class UserRegistered(msgspec.Struct, frozen=True, kw_only=True):
    """user.registered: a customer account was created."""

    customer_id: Id
    region: RegionCode  # home region: where the profile (and its PII) is stored
    country: CountryCode
    locale: Locale = "en"
    signup_channel: Channel = "web"
    marketing_opt_in: bool = False
    referral_code: str | None = None
    prime: bool = False


class AddressAdded(msgspec.Struct, frozen=True, kw_only=True):
    """customer.address_added: a delivery address was saved (coarse location only, no street)."""

    customer_id: Id
    address_id: Id
    country: CountryCode
    subdivision: str | None = None
    city: str | None = None
    is_default: bool = False


SPECS = (
    EventSpec("user.registered", 1, "customers", "customer", UserRegistered, "customer_id"),
    EventSpec("customer.address_added", 1, "customers", "customer", AddressAdded, "customer_id"),
)
