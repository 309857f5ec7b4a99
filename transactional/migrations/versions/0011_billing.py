"""Billing: each order line's tax, invoices and credit notes with gapless numbers per series.

- ``order_lines`` gains the line's tax (rate, amount, inside the price or added on top);
  existing lines are untaxed (0).
- ``invoice_series``: one counter row per (seller, region, kind); the issuer locks it, so the
  numbers of a series are sequential and, since a rolled-back issue rolls the counter back
  too, gapless.
- ``invoices``: the issued documents (invoices and credit notes), immutable, with the parties
  and lines as they were at issue; one invoice per (order, seller), one credit note per
  (refund, seller).

Revision ID: 0011_billing
Revises: 0010_vault
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0011_billing"
down_revision = "0010_vault"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the line tax columns and create invoice_series and invoices."""
    op.execute(
        """
        ALTER TABLE order_lines
            ADD COLUMN tax_rate     NUMERIC(7, 4) NOT NULL DEFAULT 0
                CHECK (tax_rate >= 0 AND tax_rate < 100),
            ADD COLUMN tax_minor    BIGINT        NOT NULL DEFAULT 0 CHECK (tax_minor >= 0),
            ADD COLUMN tax_included BOOLEAN       NOT NULL DEFAULT false;

        CREATE TABLE invoice_series (
            seller_id   TEXT   NOT NULL,
            region      TEXT   NOT NULL,
            kind        TEXT   NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
            last_number BIGINT NOT NULL DEFAULT 0 CHECK (last_number >= 0),
            PRIMARY KEY (seller_id, region, kind)
        );

        CREATE TABLE invoices (
            invoice_id  TEXT        PRIMARY KEY,
            kind        TEXT        NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
            number      TEXT        NOT NULL,
            seller_id   TEXT        NOT NULL,
            region      TEXT        NOT NULL,
            sequence    BIGINT      NOT NULL CHECK (sequence > 0),
            order_id    TEXT        NOT NULL,
            -- the order for an invoice, the refund for a credit note
            reference   TEXT        NOT NULL,
            corrects    TEXT,       -- a credit note's invoice number
            currency    CHAR(3)     NOT NULL,
            issued_at   TIMESTAMPTZ NOT NULL,
            supplied_at TIMESTAMPTZ NOT NULL,
            prices_include_tax BOOLEAN NOT NULL,
            seller      JSONB       NOT NULL,
            buyer       JSONB       NOT NULL,
            lines       JSONB       NOT NULL CHECK (jsonb_typeof(lines) = 'array'),
            net_minor   BIGINT      NOT NULL,
            tax_minor   BIGINT      NOT NULL,
            gross_minor BIGINT      NOT NULL CHECK (gross_minor = net_minor + tax_minor),
            UNIQUE (seller_id, region, kind, sequence),
            UNIQUE (kind, reference, seller_id)
        );
        CREATE INDEX invoices_order ON invoices (order_id, kind, seller_id);
        """
    )


def downgrade() -> None:
    """Drop the invoices, their series and the line tax columns."""
    op.execute(
        """
        DROP TABLE invoices;
        DROP TABLE invoice_series;
        ALTER TABLE order_lines
            DROP COLUMN tax_rate, DROP COLUMN tax_minor, DROP COLUMN tax_included;
        """
    )
