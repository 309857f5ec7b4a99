"""Warehouses, durable stock levels and checkout reservations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create warehouses (one seeded per default region), stock_levels and reservations."""
    op.execute(
        """
        CREATE TABLE warehouses (
            warehouse_id TEXT PRIMARY KEY,
            region       TEXT        NOT NULL,
            country      CHAR(2)     NOT NULL,
            name         TEXT        NOT NULL,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        INSERT INTO warehouses (warehouse_id, region, country, name) VALUES
            ('wh_eu_1', 'eu', 'DE', 'Souk EU 1 (Frankfurt)'),
            ('wh_us_1', 'us', 'US', 'Souk US 1 (Columbus)'),
            ('wh_in_1', 'in', 'IN', 'Souk IN 1 (Bengaluru)');

        -- The CHECK is the last line of defence: no code path can oversell or go negative.
        CREATE TABLE stock_levels (
            sku          TEXT        NOT NULL,
            warehouse_id TEXT        NOT NULL REFERENCES warehouses,
            on_hand      INTEGER     NOT NULL,
            reserved     INTEGER     NOT NULL DEFAULT 0,
            updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (sku, warehouse_id),
            CONSTRAINT stock_levels_reserved_within_on_hand
                CHECK (0 <= reserved AND reserved <= on_hand)
        );

        CREATE TABLE reservations (
            reservation_id TEXT PRIMARY KEY,
            checkout_id    TEXT        NOT NULL,
            sku            TEXT        NOT NULL,
            warehouse_id   TEXT        NOT NULL,
            quantity       INTEGER     NOT NULL CHECK (quantity > 0),
            status         TEXT        NOT NULL
                CHECK (status IN ('held', 'committed', 'released')),
            expires_at     TIMESTAMPTZ NOT NULL,
            order_id       TEXT,
            release_reason TEXT,
            restocked_at   TIMESTAMPTZ,
            created_at     TIMESTAMPTZ NOT NULL,
            updated_at     TIMESTAMPTZ NOT NULL,
            FOREIGN KEY (sku, warehouse_id) REFERENCES stock_levels,
            CHECK (status <> 'committed' OR order_id IS NOT NULL),
            CHECK (restocked_at IS NULL OR status = 'committed')
        );
        CREATE INDEX reservations_checkout ON reservations (checkout_id);
        CREATE INDEX reservations_order ON reservations (order_id) WHERE order_id IS NOT NULL;
        -- The expiry sweeper scans only open holds.
        CREATE INDEX reservations_held_expiry ON reservations (expires_at)
            WHERE status = 'held';
        """
    )


def downgrade() -> None:
    """Drop the inventory tables."""
    op.execute("DROP TABLE reservations; DROP TABLE stock_levels; DROP TABLE warehouses;")
