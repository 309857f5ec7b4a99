"""The customer domain: accounts, credentials and delivery addresses. Pure Python, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from transactional.shared.errors import Conflict, InvalidRequest, Unauthorized
from transactional.shared.regions import REGION_COUNTRIES, SUPPORTED_CURRENCIES

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


class EmailTaken(Conflict):
    """An account with this email already exists."""

    code = "email_taken"


class InvalidCredentials(Unauthorized):
    """Login failed; deliberately does not say whether the email exists."""

    code = "invalid_credentials"


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively; store and look them up lower-cased and trimmed."""
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned):
        raise InvalidRequest(f"not an email address: {email!r}", code="invalid_email")
    return cleaned


def check_password(password: str) -> None:
    """Refuse passwords too short to be worth hashing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            code="weak_password",
        )


@dataclass
class Address:
    """A full delivery address; only the customer and label printing ever read the street."""

    address_id: str
    customer_id: str
    full_name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    subdivision: str | None = None
    phone: str | None = None
    is_default: bool = False


@dataclass
class Customer:
    """A registered shopper account in its home region."""

    customer_id: str
    email: str
    password_hash: str
    name: str
    region: str
    country: str
    locale: str
    currency: str
    created_at: datetime
    roles: frozenset[str] = frozenset()
    addresses: list[Address] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.currency not in SUPPORTED_CURRENCIES:
            raise InvalidRequest(
                f"unsupported currency {self.currency!r}; use one of "
                f"{', '.join(sorted(SUPPORTED_CURRENCIES))}",
                code="unsupported_currency",
            )

    def add_address(self, address: Address) -> Address:
        """Attach an address; the first one, or one marked default, becomes the default."""
        if address.country not in {c for cs in REGION_COUNTRIES.values() for c in cs}:
            raise InvalidRequest(
                f"Souk does not ship to {address.country!r}", code="unserved_country"
            )
        if address.is_default or not self.addresses:
            for existing in self.addresses:
                existing.is_default = False
            address.is_default = True
        self.addresses.append(address)
        return address

    def address(self, address_id: str) -> Address | None:
        """One of this customer's addresses by id."""
        return next((a for a in self.addresses if a.address_id == address_id), None)


class PasswordHasher(Protocol):
    """Hashes and verifies passwords (argon2 in production)."""

    def hash(self, password: str) -> str:
        """A salted hash of ``password``."""

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``."""


class CustomerRepository(Protocol):
    """Stores customers with their addresses."""

    def add(self, customer: Customer) -> None:
        """Insert a new customer; EmailTaken if the email exists."""

    def get(self, customer_id: str) -> Customer | None:
        """A customer with addresses, or None."""

    def by_email(self, email: str) -> Customer | None:
        """A customer by normalised email, or None."""

    def save_addresses(self, customer: Customer) -> None:
        """Persist the customer's addresses (inserts new ones, updates the default flag)."""
