"""Wallets (stored value per customer and currency), their append-only entries, the wallet
gateway's spends and idempotency records, card top-ups, and the EMI plan of a payment.

The balance can never go negative: spends are a conditional update checked again by
``balance_minor >= 0``. Entries are append-only (a trigger refuses UPDATE and DELETE).

Revision ID: 0012_wallet
Revises: 0011_billing
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0012_wallet"
down_revision = "0011_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Wallet tables and the payments' EMI columns."""
    op.execute(
        """
        CREATE TABLE wallets (
            customer_id   TEXT        NOT NULL,
            currency      CHAR(3)     NOT NULL,
            balance_minor BIGINT      NOT NULL DEFAULT 0 CHECK (balance_minor >= 0),
            created_at    TIMESTAMPTZ NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (customer_id, currency)
        );
        CREATE TABLE wallet_entries (
            entry_id      TEXT PRIMARY KEY,
            customer_id   TEXT        NOT NULL,
            currency      CHAR(3)     NOT NULL,
            kind          TEXT        NOT NULL
                CHECK (kind IN ('topup', 'debit', 'release', 'refund', 'credit')),
            amount_minor  BIGINT      NOT NULL CHECK (amount_minor <> 0),  -- signed
            balance_after BIGINT      NOT NULL CHECK (balance_after >= 0),
            reference     TEXT        NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL,
            UNIQUE (kind, reference),
            FOREIGN KEY (customer_id, currency) REFERENCES wallets
        );
        CREATE INDEX wallet_entries_wallet ON wallet_entries (customer_id, currency, created_at);
        CREATE FUNCTION wallet_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'wallet_entries is append-only (correct with a new entry)';
        END $$;
        CREATE TRIGGER wallet_entries_append_only BEFORE UPDATE OR DELETE ON wallet_entries
            FOR EACH ROW EXECUTE FUNCTION wallet_entries_append_only();

        -- The wallet gateway's charges: a spend is held (debited), then captured or voided.
        CREATE TABLE wallet_spends (
            reference      TEXT PRIMARY KEY,
            customer_id    TEXT        NOT NULL,
            currency       CHAR(3)     NOT NULL,
            amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0),
            status         TEXT        NOT NULL CHECK (status IN ('authorized', 'captured',
                'partially_refunded', 'refunded', 'voided')),
            captured_minor BIGINT      NOT NULL DEFAULT 0
                CHECK (captured_minor BETWEEN 0 AND amount_minor),
            refunded_minor BIGINT      NOT NULL DEFAULT 0
                CHECK (refunded_minor BETWEEN 0 AND captured_minor),
            created_at     TIMESTAMPTZ NOT NULL,
            updated_at     TIMESTAMPTZ NOT NULL
        );
        -- The first answer of each idempotency key the wallet and split gateways were sent.
        CREATE TABLE wallet_requests (
            idempotency_key TEXT PRIMARY KEY,
            operation       TEXT        NOT NULL,
            fingerprint     TEXT        NOT NULL,
            result          JSONB       NOT NULL,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE wallet_topups (
            topup_id          TEXT PRIMARY KEY,
            customer_id       TEXT        NOT NULL,
            idempotency_key   TEXT        NOT NULL,
            fingerprint       TEXT        NOT NULL,
            amount_minor      BIGINT      NOT NULL CHECK (amount_minor > 0),
            currency          CHAR(3)     NOT NULL,
            instrument_token  TEXT        NOT NULL,
            status            TEXT        NOT NULL
                CHECK (status IN ('pending', 'succeeded', 'failed')),
            gateway           TEXT        NOT NULL,
            gateway_reference TEXT,
            decline_code      TEXT,
            created_at        TIMESTAMPTZ NOT NULL,
            updated_at        TIMESTAMPTZ NOT NULL,
            UNIQUE (customer_id, idempotency_key)
        );

        -- An EMI payment's instalment plan, as shown before paying.
        ALTER TABLE payments
            ADD COLUMN emi_months SMALLINT CHECK (emi_months IN (3, 6, 12)),
            ADD COLUMN emi_bank TEXT,
            ADD COLUMN emi_rate_bp INTEGER CHECK (emi_rate_bp >= 0),
            ADD COLUMN emi_monthly_minor BIGINT,
            ADD COLUMN emi_interest_minor BIGINT;
        """
    )


def downgrade() -> None:
    """Drop the wallet tables and the EMI columns."""
    op.execute(
        """
        ALTER TABLE payments DROP COLUMN emi_months, DROP COLUMN emi_bank,
            DROP COLUMN emi_rate_bp, DROP COLUMN emi_monthly_minor,
            DROP COLUMN emi_interest_minor;
        DROP TABLE wallet_topups;
        DROP TABLE wallet_requests;
        DROP TABLE wallet_spends;
        DROP TABLE wallet_entries;
        DROP FUNCTION wallet_entries_append_only();
        DROP TABLE wallets;
        """
    )
