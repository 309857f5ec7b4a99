"""Fraud screening of checkouts: the saga keeps the screen's verdict, and an order can wait
on hold for a fraud review (authorized, not captured) before it is paid or cancelled.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_STATUSES = "'placed', 'paid', 'packed', 'shipped', 'delivered', 'cancelled', 'returned'"
NEW_STATUSES = OLD_STATUSES + ", 'on_hold'"
OLD_STAGES = (
    "'started', 'validated', 'reserved', 'ordered', 'authorized', 'captured', 'completed', 'failed'"
)
NEW_STAGES = OLD_STAGES + ", 'held'"


def _statuses(statuses: str) -> str:
    return f"""
        ALTER TABLE orders DROP CONSTRAINT orders_status_check,
            ADD CONSTRAINT orders_status_check CHECK (status IN ({statuses}));
        ALTER TABLE fulfilment_groups DROP CONSTRAINT fulfilment_groups_status_check,
            ADD CONSTRAINT fulfilment_groups_status_check CHECK (status IN ({statuses}));
        ALTER TABLE order_transitions
            DROP CONSTRAINT order_transitions_from_status_check,
            DROP CONSTRAINT order_transitions_to_status_check,
            ADD CONSTRAINT order_transitions_from_status_check
                CHECK (from_status IN ({statuses})),
            ADD CONSTRAINT order_transitions_to_status_check CHECK (to_status IN ({statuses}));
    """


def upgrade() -> None:
    """checkouts.fraud (the verdict), stage 'held', order status 'on_hold'."""
    op.execute(
        f"""
        ALTER TABLE checkouts ADD COLUMN fraud JSONB;
        ALTER TABLE checkouts DROP CONSTRAINT checkouts_stage_check,
            ADD CONSTRAINT checkouts_stage_check CHECK (stage IN ({NEW_STAGES}));
        {_statuses(NEW_STATUSES)}
        """
    )


def downgrade() -> None:
    """Back to no fraud column, no held stage, no on_hold status (none may be left)."""
    op.execute(
        f"""
        ALTER TABLE checkouts DROP COLUMN fraud;
        ALTER TABLE checkouts DROP CONSTRAINT checkouts_stage_check,
            ADD CONSTRAINT checkouts_stage_check CHECK (stage IN ({OLD_STAGES}));
        {_statuses(OLD_STATUSES)}
        """
    )
