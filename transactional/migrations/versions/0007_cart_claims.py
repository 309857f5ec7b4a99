"""One checkout at a time per cart: the running checkout claims its cart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create checkout_cart_claims (released once the cart's lines are bought or the
    checkout failed)."""
    op.execute(
        """
        CREATE TABLE checkout_cart_claims (
            cart_id     TEXT PRIMARY KEY,
            checkout_id TEXT        NOT NULL,
            claimed_at  TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX checkout_cart_claims_age ON checkout_cart_claims (claimed_at);
        """
    )


def downgrade() -> None:
    """Drop the claims."""
    op.execute("DROP TABLE checkout_cart_claims")
