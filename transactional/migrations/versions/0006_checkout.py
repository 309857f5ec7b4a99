"""Checkout sagas and their per-customer idempotency keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create checkouts (the saga, leased for recovery) and checkout_idempotency_keys."""
    op.execute(
        """
        CREATE TABLE checkouts (
            checkout_id      TEXT PRIMARY KEY,
            customer_id      TEXT        NOT NULL,
            cart_id          TEXT        NOT NULL,
            idempotency_key  TEXT        NOT NULL,
            region           TEXT        NOT NULL,
            status           TEXT        NOT NULL
                CHECK (status IN ('pending', 'completed', 'failed')),
            stage            TEXT        NOT NULL CHECK (stage IN ('started', 'validated',
                'reserved', 'ordered', 'authorized', 'captured', 'completed', 'failed')),
            plan             JSONB,
            instrument_token TEXT,
            card_last4       CHAR(4),
            allocations      JSONB       NOT NULL DEFAULT '[]',
            order_id         TEXT,
            totals           JSONB,
            payment_id       TEXT,
            payment_status   TEXT,
            failure          JSONB,
            history          JSONB       NOT NULL DEFAULT '[]',
            lease_owner      TEXT,
            lease_until      TIMESTAMPTZ,
            -- Takeovers by recovery: bounded, so no saga is retried for ever.
            recovery_attempts INTEGER    NOT NULL DEFAULT 0 CHECK (recovery_attempts >= 0),
            created_at       TIMESTAMPTZ NOT NULL,
            updated_at       TIMESTAMPTZ NOT NULL
        );
        -- Recovery scans only live sagas, oldest lease first.
        CREATE INDEX checkouts_stale ON checkouts (lease_until) WHERE status = 'pending';
        CREATE INDEX checkouts_customer ON checkouts (customer_id, created_at DESC);

        CREATE TABLE checkout_idempotency_keys (
            customer_id     TEXT        NOT NULL,
            idempotency_key TEXT        NOT NULL,
            fingerprint     CHAR(64)    NOT NULL,
            -- Deferred: the key is claimed first, its saga inserted in the same transaction.
            checkout_id     TEXT        NOT NULL REFERENCES checkouts
                DEFERRABLE INITIALLY DEFERRED,
            response_status SMALLINT,
            response_body   JSONB,
            created_at      TIMESTAMPTZ NOT NULL,
            expires_at      TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (customer_id, idempotency_key),
            CHECK ((response_status IS NULL) = (response_body IS NULL))
        );
        CREATE INDEX checkout_idempotency_keys_expiry ON checkout_idempotency_keys (expires_at);
        """
    )


def downgrade() -> None:
    """Drop the checkout tables."""
    op.execute("DROP TABLE checkout_idempotency_keys; DROP TABLE checkouts;")
