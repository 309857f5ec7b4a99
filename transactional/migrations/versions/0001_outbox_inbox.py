"""Outbox and inbox tables of the shared kernel.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the outbox (events awaiting the relay) and the inbox (events applied once)."""
    op.execute(
        """
        CREATE TABLE outbox (
            id             BIGSERIAL PRIMARY KEY,
            event_id       UUID        NOT NULL UNIQUE,
            event_type     TEXT        NOT NULL,
            topic          TEXT        NOT NULL,
            message_key    TEXT        NOT NULL,
            value          BYTEA       NOT NULL,
            headers        JSONB       NOT NULL DEFAULT '{}'::jsonb,
            created_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            published_at   TIMESTAMPTZ
        )
        """
    )
    # The relay only ever scans unpublished rows in id order.
    op.execute("CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL")
    op.execute("CREATE INDEX outbox_published_at ON outbox (published_at)")
    op.execute(
        """
        CREATE TABLE inbox (
            consumer     TEXT        NOT NULL,
            event_id     UUID        NOT NULL,
            event_type   TEXT        NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (consumer, event_id)
        )
        """
    )


def downgrade() -> None:
    """Drop the shared-kernel tables."""
    op.execute("DROP TABLE inbox")
    op.execute("DROP TABLE outbox")
