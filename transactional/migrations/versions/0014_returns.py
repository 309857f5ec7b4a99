"""Returns (RMA): the returns table, and the inventory's side of returned units.

``returns`` holds each return with its lines and inspection (JSONB: the aggregate is read and
written whole) and its refund plan, committed before the money moves so a crash can finish
it. Inventory gains a damaged bucket per stock key and ``stock_returns``, one row per return
and stock key moved: the idempotency record of a return's stock move, and what a later
whole-order restock must not put back a second time.

Revision ID: 0014_returns
Revises: 0013_async_payments
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0014_returns"
down_revision = "0013_async_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create returns and stock_returns; add stock_levels.damaged."""
    op.execute(
        """
        CREATE TABLE returns (
            return_id              TEXT        PRIMARY KEY,
            order_id               TEXT        NOT NULL,
            region                 TEXT        NOT NULL,
            customer_id            TEXT        NOT NULL,
            currency               CHAR(3)     NOT NULL,
            payment_id             TEXT,
            status                 TEXT        NOT NULL CHECK (
                status IN ('requested', 'approved', 'rejected', 'received', 'refunded')),
            lines                  JSONB       NOT NULL,
            comment                TEXT,
            requested_refund_minor BIGINT      NOT NULL CHECK (requested_refund_minor >= 0),
            decided_by             TEXT,
            decision_note          TEXT,
            received_at            TIMESTAMPTZ,
            stock_moved            BOOLEAN     NOT NULL DEFAULT false,
            refund_id              TEXT        UNIQUE,
            refund_amount_minor    BIGINT      CHECK (refund_amount_minor > 0),
            refund_goods_minor     BIGINT      CHECK (refund_goods_minor >= 0),
            refund_shipping_minor  BIGINT      CHECK (refund_shipping_minor >= 0),
            refund_method          TEXT        CHECK (
                refund_method IN ('original_payment', 'wallet_credit')),
            refund_units           JSONB,
            refund_planned_at      TIMESTAMPTZ,
            refunded_at            TIMESTAMPTZ,
            refund_error           TEXT,
            requested_at           TIMESTAMPTZ NOT NULL,
            updated_at             TIMESTAMPTZ NOT NULL,
            CHECK ((refund_id IS NULL) = (refund_amount_minor IS NULL)),
            CHECK (status <> 'refunded' OR refund_id IS NOT NULL)
        );
        CREATE INDEX returns_order ON returns (order_id, requested_at);
        CREATE INDEX returns_customer ON returns (customer_id, requested_at DESC, return_id DESC);
        -- The sweeper's work: received returns (stock move or refund not done yet).
        CREATE INDEX returns_unfinished ON returns (updated_at) WHERE status = 'received';

        ALTER TABLE stock_levels ADD COLUMN damaged INTEGER NOT NULL DEFAULT 0
            CONSTRAINT stock_levels_damaged_non_negative CHECK (damaged >= 0);
        CREATE TABLE stock_returns (
            return_id    TEXT        NOT NULL,
            order_id     TEXT        NOT NULL,
            sku          TEXT        NOT NULL,
            warehouse_id TEXT        NOT NULL,
            resellable   INTEGER     NOT NULL CHECK (resellable >= 0),
            damaged      INTEGER     NOT NULL CHECK (damaged >= 0),
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (return_id, sku, warehouse_id),
            FOREIGN KEY (sku, warehouse_id) REFERENCES stock_levels
        );
        CREATE INDEX stock_returns_order ON stock_returns (order_id);
        """
    )


def downgrade() -> None:
    """Drop the returns tables and the damaged bucket."""
    op.execute(
        """
        DROP TABLE stock_returns;
        ALTER TABLE stock_levels DROP COLUMN damaged;
        DROP TABLE returns;
        """
    )
