"""Customer use cases: register, sign in, read the profile, manage addresses."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from schemas.customers import AddressAdded, UserRegistered
from schemas.ids import new_id
from schemas.registry import REGISTRY
from transactional.customers.model import (
    Address,
    Customer,
    CustomerRepository,
    InvalidCredentials,
    PasswordHasher,
    check_password,
    normalise_email,
)
from transactional.shared.auth import Principal, TokenCodec
from transactional.shared.errors import InvalidRequest, NotFound
from transactional.shared.regions import REGION_DEFAULT_COUNTRY
from transactional.shared.unit_of_work import UnitOfWork


class CustomersUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the customer repository attached."""

    customers: CustomerRepository


# Called after a successful login with (customer_id, guest_cart_id): merges a guest cart into
# the customer's and returns the customer's cart id. Wired to the cart slice by the root.
CartMerger = Callable[[str, str | None], str | None]


@dataclass(frozen=True)
class Registration:
    """What a new customer supplies."""

    email: str
    password: str
    name: str
    region: str
    locale: str
    currency: str
    country: str | None = None
    marketing_opt_in: bool = False


@dataclass(frozen=True)
class NewAddress:
    """A delivery address as entered."""

    full_name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    subdivision: str | None = None
    phone: str | None = None
    is_default: bool = False


@dataclass(frozen=True)
class Session:
    """A signed-in customer: the bearer token, its expiry, and the (merged) cart."""

    customer: Customer
    token: str
    expires_at: datetime
    cart_id: str | None


class CustomerService:
    """The User Service of the seed."""

    def __init__(
        self,
        uow: Callable[[], CustomersUnitOfWork],
        passwords: PasswordHasher,
        tokens: TokenCodec,
        *,
        regions: Collection[str],
        merge_cart: CartMerger | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._passwords = passwords
        self._tokens = tokens
        self._regions = frozenset(regions)
        self._merge_cart = merge_cart
        self._clock = clock

    def register(self, registration: Registration) -> Customer:
        """Create an account and emit ``user.registered``; EmailTaken if it exists."""
        if registration.region not in self._regions:
            raise InvalidRequest(
                f"unknown region {registration.region!r}; Souk serves "
                f"{', '.join(sorted(self._regions))}",
                code="unknown_region",
            )
        check_password(registration.password)
        country = (
            registration.country
            or _country_of_locale(registration.locale)
            or (REGION_DEFAULT_COUNTRY.get(registration.region, "US"))
        )
        customer = Customer(
            customer_id=new_id("cus"),
            email=normalise_email(registration.email),
            password_hash=self._passwords.hash(registration.password),
            name=registration.name.strip(),
            region=registration.region,
            country=country,
            locale=registration.locale,
            currency=registration.currency,
            created_at=self._clock(),
        )
        with self._uow() as uow:
            uow.customers.add(customer)
            uow.emit(
                REGISTRY.new_event(
                    "user.registered",
                    UserRegistered(
                        customer_id=customer.customer_id,
                        region=customer.region,
                        country=customer.country,
                        locale=customer.locale,
                        marketing_opt_in=registration.marketing_opt_in,
                    ),
                    region=customer.region,
                )
            )
            uow.commit()
        return customer

    def sign_in(self, email: str, password: str, guest_cart_id: str | None = None) -> Session:
        """Check the password, issue a bearer token and merge the guest cart, if any."""
        try:
            normalised = normalise_email(email)
        except InvalidRequest:
            raise InvalidCredentials("wrong email or password") from None
        with self._uow() as uow:
            customer = uow.customers.by_email(normalised)
        if customer is None or not self._passwords.verify(customer.password_hash, password):
            raise InvalidCredentials("wrong email or password")
        token, expires_at = self._tokens.issue(
            Principal(customer.customer_id, customer.region, customer.roles)
        )
        cart_id = (
            self._merge_cart(customer.customer_id, guest_cart_id) if self._merge_cart else None
        )
        return Session(customer, token, expires_at, cart_id)

    def get(self, customer_id: str) -> Customer:
        """A customer with addresses; NotFound if the account is gone."""
        with self._uow() as uow:
            customer = uow.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id}", code="customer_not_found")
        return customer

    def add_address(self, customer_id: str, entered: NewAddress) -> Address:
        """Save a delivery address and emit ``customer.address_added`` (without the street)."""
        with self._uow() as uow:
            customer = uow.customers.get(customer_id)
            if customer is None:
                raise NotFound(f"no customer {customer_id}", code="customer_not_found")
            address = customer.add_address(
                Address(
                    address_id=new_id("adr"),
                    customer_id=customer_id,
                    full_name=entered.full_name,
                    line1=entered.line1,
                    line2=entered.line2,
                    city=entered.city,
                    subdivision=entered.subdivision,
                    postal_code=entered.postal_code,
                    country=entered.country,
                    phone=entered.phone,
                    is_default=entered.is_default,
                )
            )
            uow.customers.save_addresses(customer)
            uow.emit(
                REGISTRY.new_event(
                    "customer.address_added",
                    AddressAdded(
                        customer_id=customer_id,
                        address_id=address.address_id,
                        country=address.country,
                        subdivision=address.subdivision,
                        city=address.city,
                        is_default=address.is_default,
                    ),
                    region=customer.region,
                )
            )
            uow.commit()
        return address

    def addresses(self, customer_id: str) -> list[Address]:
        """The customer's addresses, default first."""
        customer = self.get(customer_id)
        return sorted(customer.addresses, key=lambda a: not a.is_default)


def _country_of_locale(locale: str) -> str | None:
    """``en-GB`` → ``GB``; a bare language has no country."""
    _, _, country = locale.partition("-")
    return country.upper() if len(country) == 2 else None
