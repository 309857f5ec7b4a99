"""Customer use cases on in-memory fakes: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeUnitOfWork
from transactional.customers.model import (
    Customer,
    EmailTaken,
    InvalidCredentials,
)
from transactional.customers.service import CustomerService, NewAddress, Registration
from transactional.shared.auth import JwtTokens
from transactional.shared.errors import InvalidRequest, NotFound, Unauthorized

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class FakeCustomers:
    def __init__(self) -> None:
        self.rows: dict[str, Customer] = {}

    def add(self, customer: Customer) -> None:
        if any(c.email == customer.email for c in self.rows.values()):
            raise EmailTaken(customer.email)
        self.rows[customer.customer_id] = customer

    def get(self, customer_id: str) -> Customer | None:
        return self.rows.get(customer_id)

    def by_email(self, email: str) -> Customer | None:
        return next((c for c in self.rows.values() if c.email == email), None)

    def save_addresses(self, customer: Customer) -> None:
        self.rows[customer.customer_id] = customer


class FakeCustomersUow(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.customers = FakeCustomers()


class PlainPasswords:
    """Reversible 'hash' so tests run fast; the argon2 adapter has its own test."""

    def hash(self, password: str) -> str:
        return "plain$" + password

    def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == "plain$" + password


def make_service(
    merged: list[tuple[str, str | None]] | None = None,
) -> tuple[CustomerService, FakeCustomersUow]:
    uow = FakeCustomersUow()

    def merge(customer_id: str, guest_cart_id: str | None) -> str | None:
        if merged is not None:
            merged.append((customer_id, guest_cart_id))
        return "cart_of_" + customer_id

    service = CustomerService(
        lambda: uow,
        PlainPasswords(),
        JwtTokens("k" * 32, ttl_s=600, clock=lambda: NOW),
        regions=["eu", "us"],
        merge_cart=merge,
        clock=lambda: NOW,
    )
    return service, uow


def registration(**overrides: object) -> Registration:
    fields: dict[str, object] = {
        "email": " Ada@Example.com ",
        "password": "long enough",
        "name": " Ada ",
        "region": "eu",
        "locale": "en-GB",
        "currency": "EUR",
    }
    fields.update(overrides)
    return Registration(**fields)  # type: ignore[arg-type]


def test_register_normalises_and_emits_user_registered() -> None:
    service, uow = make_service()
    customer = service.register(registration())
    assert customer.email == "ada@example.com"
    assert customer.name == "Ada"
    assert customer.country == "GB"  # from the locale
    assert customer.password_hash == "plain$long enough"
    assert uow.event_types() == ["user.registered"]
    assert uow.committed[0].aggregate_id == customer.customer_id


def test_country_falls_back_to_the_region_default() -> None:
    service, _ = make_service()
    assert service.register(registration(locale="en")).country == "DE"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"region": "in"}, "unknown_region"),  # not served by this deployment
        ({"password": "short"}, "weak_password"),
        ({"email": "nope"}, "invalid_email"),
        ({"currency": "JPY"}, "unsupported_currency"),
    ],
)
def test_invalid_registrations_emit_nothing(overrides: dict[str, object], code: str) -> None:
    service, uow = make_service()
    with pytest.raises(InvalidRequest) as raised:
        service.register(registration(**overrides))
    assert raised.value.code == code
    assert uow.committed == []


def test_duplicate_email_is_a_conflict() -> None:
    service, uow = make_service()
    service.register(registration())
    with pytest.raises(EmailTaken):
        service.register(registration(email="ADA@example.com"))
    assert uow.event_types() == ["user.registered"]


def test_sign_in_issues_a_verifiable_token_and_merges_the_guest_cart() -> None:
    merged: list[tuple[str, str | None]] = []
    service, _ = make_service(merged)
    customer = service.register(registration())
    session = service.sign_in("ADA@example.com", "long enough", guest_cart_id="crt_guest")
    assert session.expires_at == NOW + timedelta(seconds=600)
    assert session.cart_id == "cart_of_" + customer.customer_id
    assert merged == [(customer.customer_id, "crt_guest")]
    principal = JwtTokens("k" * 32, ttl_s=600, clock=lambda: NOW).verify(session.token)
    assert principal.customer_id == customer.customer_id and principal.region == "eu"


def test_token_expires_with_the_clock() -> None:
    service, _ = make_service()
    service.register(registration())
    token = service.sign_in("ada@example.com", "long enough").token
    later = JwtTokens("k" * 32, ttl_s=600, clock=lambda: NOW + timedelta(seconds=601))
    with pytest.raises(Unauthorized) as raised:
        later.verify(token)
    assert raised.value.code == "token_expired"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("ada@example.com", "wrong pass"),
        ("who@example.com", "long enough"),
        ("not an email", "long enough"),
    ],
)
def test_failed_sign_in_never_says_why(email: str, password: str) -> None:
    service, _ = make_service()
    service.register(registration())
    with pytest.raises(InvalidCredentials) as raised:
        service.sign_in(email, password)
    assert raised.value.detail == "wrong email or password"


def test_first_address_becomes_default_and_a_new_default_replaces_it() -> None:
    service, uow = make_service()
    customer = service.register(registration())
    home = NewAddress(
        full_name="Ada", line1="1 Main", city="Berlin", postal_code="10115", country="DE"
    )
    first = service.add_address(customer.customer_id, home)
    second = service.add_address(
        customer.customer_id,
        NewAddress(
            full_name="Ada",
            line1="2 Rue",
            city="Paris",
            postal_code="75001",
            country="FR",
            is_default=True,
        ),
    )
    assert first.is_default is False and second.is_default is True
    assert [a.address_id for a in service.addresses(customer.customer_id)] == [
        second.address_id,
        first.address_id,
    ]
    assert uow.event_types() == [
        "user.registered",
        "customer.address_added",
        "customer.address_added",
    ]


def test_address_in_an_unserved_country_or_for_nobody_is_refused() -> None:
    service, _ = make_service()
    customer = service.register(registration())
    with pytest.raises(InvalidRequest):
        service.add_address(
            customer.customer_id,
            NewAddress(full_name="A", line1="x", city="Tokyo", postal_code="1", country="JP"),
        )
    with pytest.raises(NotFound):
        service.add_address(
            "cus_missing",
            NewAddress(full_name="A", line1="x", city="Berlin", postal_code="1", country="DE"),
        )
