"""Customers and their delivery addresses.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create customers (unique lower-cased email) and customer_addresses."""
    op.execute(
        """
        CREATE TABLE customers (
            customer_id   TEXT PRIMARY KEY,
            email         TEXT        NOT NULL UNIQUE CHECK (email = lower(email)),
            password_hash TEXT        NOT NULL,
            name          TEXT        NOT NULL,
            region        TEXT        NOT NULL,
            country       CHAR(2)     NOT NULL,
            locale        TEXT        NOT NULL,
            currency      CHAR(3)     NOT NULL,
            roles         TEXT[]      NOT NULL DEFAULT '{}',
            created_at    TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE customer_addresses (
            address_id   TEXT PRIMARY KEY,
            customer_id  TEXT    NOT NULL REFERENCES customers ON DELETE CASCADE,
            full_name    TEXT    NOT NULL,
            line1        TEXT    NOT NULL,
            line2        TEXT,
            city         TEXT    NOT NULL,
            subdivision  TEXT,
            postal_code  TEXT    NOT NULL,
            country      CHAR(2) NOT NULL,
            phone        TEXT,
            is_default   BOOLEAN NOT NULL DEFAULT false,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX customer_addresses_customer ON customer_addresses (customer_id);
        """
    )


def downgrade() -> None:
    """Drop the customer tables."""
    op.execute("DROP TABLE customer_addresses; DROP TABLE customers;")
