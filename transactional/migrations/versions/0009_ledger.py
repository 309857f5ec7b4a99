"""The double-entry ledger: transactions, their postings, and balances per account and currency.

Append-only: triggers reject UPDATE, DELETE and TRUNCATE of transactions and postings (a
mistake is corrected by a reversal). Balances are kept per (account, currency, shard): every
booking adds to one of 16 stripes chosen by its order (or reference), so concurrent checkouts
do not queue on the one hot row of a processor's clearing account; an account's balance is the
sum of its stripes. They are written by the same statement that inserts the postings.

Revision ID: 0009_ledger
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0009_ledger"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ledger tables and their append-only triggers."""
    op.execute(
        """
        CREATE TABLE ledger_transactions (
            transaction_id TEXT        PRIMARY KEY,
            kind           TEXT        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
            reference      TEXT        NOT NULL,
            order_id       TEXT,
            payment_id     TEXT,
            reverses       TEXT        UNIQUE REFERENCES ledger_transactions,
            memo           TEXT,
            occurred_at    TIMESTAMPTZ NOT NULL,
            recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            -- Booking the same (kind, reference) twice is a no-op: the idempotency key.
            UNIQUE (kind, reference)
        );
        CREATE INDEX ledger_transactions_order ON ledger_transactions (order_id)
            WHERE order_id IS NOT NULL;

        CREATE TABLE ledger_postings (
            transaction_id TEXT     NOT NULL REFERENCES ledger_transactions,
            seq            SMALLINT NOT NULL,
            account        TEXT     NOT NULL,
            currency       TEXT     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            amount_minor   BIGINT   NOT NULL CHECK (amount_minor <> 0),  -- + debit, - credit
            PRIMARY KEY (transaction_id, seq)
        );

        CREATE TABLE ledger_balances (
            account       TEXT        NOT NULL,
            currency      TEXT        NOT NULL,
            shard         SMALLINT    NOT NULL CHECK (shard BETWEEN 0 AND 15),
            balance_minor BIGINT      NOT NULL,
            postings      BIGINT      NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (account, currency, shard)
        );

        CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger is append-only: % of % is not allowed; book a reversal',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
        END;
        $$;
        CREATE TRIGGER ledger_transactions_append_only
            BEFORE UPDATE OR DELETE ON ledger_transactions
            FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
        CREATE TRIGGER ledger_transactions_no_truncate
            BEFORE TRUNCATE ON ledger_transactions
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
        CREATE TRIGGER ledger_postings_append_only
            BEFORE UPDATE OR DELETE ON ledger_postings
            FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
        CREATE TRIGGER ledger_postings_no_truncate
            BEFORE TRUNCATE ON ledger_postings
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
        """
    )


def downgrade() -> None:
    """Drop the ledger (its history with it)."""
    op.execute(
        "DROP TABLE ledger_balances, ledger_postings, ledger_transactions; "
        "DROP FUNCTION ledger_append_only();"
    )
