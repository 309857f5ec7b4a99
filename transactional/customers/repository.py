"""PostgreSQL adapter of the customer repository, and the slice's unit of work."""

from __future__ import annotations

from typing import Any, Self

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from transactional.customers.model import Address, Customer, EmailTaken
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_CUSTOMER_COLUMNS = (
    "customer_id, email, password_hash, name, region, country, locale, currency, roles, created_at"
)
ADDRESS_COLUMNS = (
    "address_id, customer_id, full_name, line1, line2, city, subdivision, postal_code, country, "
    "phone, is_default"
)


class SqlCustomerRepository:
    """Customers and addresses in the ``customers`` / ``customer_addresses`` tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, customer: Customer) -> None:
        """Insert a new customer; EmailTaken if the email exists."""
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    sql(
                        f"INSERT INTO customers ({_CUSTOMER_COLUMNS}) VALUES (:customer_id, "
                        ":email, :password_hash, :name, :region, :country, :locale, :currency, "
                        ":roles, :created_at)"
                    ),
                    {
                        "customer_id": customer.customer_id,
                        "email": customer.email,
                        "password_hash": customer.password_hash,
                        "name": customer.name,
                        "region": customer.region,
                        "country": customer.country,
                        "locale": customer.locale,
                        "currency": customer.currency,
                        "roles": sorted(customer.roles),
                        "created_at": customer.created_at,
                    },
                )
        except IntegrityError:
            raise EmailTaken(f"an account with {customer.email} already exists") from None

    def get(self, customer_id: str) -> Customer | None:
        """A customer with addresses, or None."""
        return self._one("customer_id", customer_id)

    def by_email(self, email: str) -> Customer | None:
        """A customer by normalised email, or None."""
        return self._one("email", email)

    def save_addresses(self, customer: Customer) -> None:
        """Insert new addresses and rewrite the default flags."""
        rows = [_address_row(address) for address in customer.addresses]
        self._connection.execute(
            sql(
                f"INSERT INTO customer_addresses ({ADDRESS_COLUMNS}) VALUES (:address_id, "
                ":customer_id, :full_name, :line1, :line2, :city, :subdivision, :postal_code, "
                ":country, :phone, :is_default) "
                "ON CONFLICT (address_id) DO UPDATE SET is_default = EXCLUDED.is_default"
            ),
            rows,
        )

    def _one(self, column: str, value: str) -> Customer | None:
        row = (
            self._connection.execute(
                sql(f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE {column} = :value"),
                {"value": value},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        addresses = self._connection.execute(
            sql(
                f"SELECT {ADDRESS_COLUMNS} FROM customer_addresses WHERE customer_id = :id "
                "ORDER BY created_at, address_id"
            ),
            {"id": row["customer_id"]},
        ).mappings()
        fields = dict(row)
        fields["roles"] = frozenset(fields["roles"] or ())
        fields["country"] = fields["country"].strip()
        fields["currency"] = fields["currency"].strip()
        return Customer(**fields, addresses=[_address(dict(a)) for a in addresses])


def _address_row(address: Address) -> dict[str, Any]:
    return {
        "address_id": address.address_id,
        "customer_id": address.customer_id,
        "full_name": address.full_name,
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "subdivision": address.subdivision,
        "postal_code": address.postal_code,
        "country": address.country,
        "phone": address.phone,
        "is_default": address.is_default,
    }


def _address(fields: dict[str, Any]) -> Address:
    fields["country"] = fields["country"].strip()
    return Address(**fields)


class SqlCustomersUnitOfWork(SqlUnitOfWork):
    """A transaction with ``customers`` attached."""

    customers: SqlCustomerRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.customers = SqlCustomerRepository(self.connection)
        return self
