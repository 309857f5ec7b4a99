"""Payments that wait on the payer: 3-D Secure step-up and UPI collect, with signed webhooks.

A checkout can wait in stage 'action_required' (the payer confirms a challenge or approves a
collect request); webhook deliveries are kept by id (replays book nothing); the UPI sandbox
keeps its collect requests in its own tables, as an external provider would.

Revision ID: 0013_async_payments
Revises: 0012_wallet
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013_async_payments"
down_revision = "0012_wallet"
branch_labels = None
depends_on = None

OLD_STAGES = (
    "'started', 'validated', 'reserved', 'ordered', 'authorized', 'captured', 'completed', "
    "'failed', 'held'"
)
NEW_STAGES = OLD_STAGES + ", 'action_required'"


def upgrade() -> None:
    """Stage 'action_required', webhook deliveries, the UPI sandbox's tables."""
    op.execute(
        f"""
        ALTER TABLE checkouts DROP CONSTRAINT checkouts_stage_check,
            ADD CONSTRAINT checkouts_stage_check CHECK (stage IN ({NEW_STAGES}));
        -- Webhooks name the gateway's charge: find its payment without a scan.
        CREATE INDEX payments_gateway_reference ON payments (gateway_reference)
            WHERE gateway_reference IS NOT NULL;

        CREATE TABLE payment_webhook_deliveries (
            provider     TEXT        NOT NULL,
            delivery_id  TEXT        NOT NULL,
            type         TEXT        NOT NULL,
            reference    TEXT        NOT NULL,
            received_at  TIMESTAMPTZ NOT NULL,
            outcome      TEXT        CHECK (outcome IN ('applied', 'ignored')),
            PRIMARY KEY (provider, delivery_id)
        );

        -- The UPI sandbox's own state (test mode), apart from ours like a provider's.
        CREATE TABLE sandbox_upi_collects (
            reference      TEXT PRIMARY KEY,
            vpa            TEXT        NOT NULL,
            amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0),
            currency       CHAR(3)     NOT NULL,
            status         TEXT        NOT NULL,
            decline_code   TEXT,
            captured_minor BIGINT      NOT NULL CHECK (captured_minor BETWEEN 0 AND amount_minor),
            refunded_minor BIGINT      NOT NULL CHECK (refunded_minor BETWEEN 0 AND captured_minor),
            event_id       TEXT,
            event_type     TEXT,
            delivered      BOOLEAN     NOT NULL DEFAULT false,
            created_at     TIMESTAMPTZ NOT NULL,
            updated_at     TIMESTAMPTZ NOT NULL,
            expires_at     TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX sandbox_upi_undelivered ON sandbox_upi_collects (created_at)
            WHERE NOT delivered;
        CREATE TABLE sandbox_upi_requests (
            idempotency_key TEXT PRIMARY KEY,
            operation       TEXT        NOT NULL,
            fingerprint     TEXT        NOT NULL,
            result          JSONB       NOT NULL,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    """Drop the tables; no saga may be left waiting on a payer."""
    op.execute(
        f"""
        DROP TABLE sandbox_upi_requests, sandbox_upi_collects, payment_webhook_deliveries;
        DROP INDEX payments_gateway_reference;
        ALTER TABLE checkouts DROP CONSTRAINT checkouts_stage_check,
            ADD CONSTRAINT checkouts_stage_check CHECK (stage IN ({OLD_STAGES}));
        """
    )
