"""One checkout at a time per cart: the running checkout claims its cart, and a bought cart
remembers its order, so a checkout that read the cart before it was bought cannot buy it again.

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
    """Create checkout_cart_claims: ``checkout_id`` holds the cart while set (freed once its
    lines are bought, with ``last_order_id``, or once the checkout failed)."""
    op.execute(
        """
        CREATE TABLE checkout_cart_claims (
            cart_id       TEXT PRIMARY KEY,
            checkout_id   TEXT,
            last_order_id TEXT,
            claimed_at    TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX checkout_cart_claims_held ON checkout_cart_claims (claimed_at)
            WHERE checkout_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    """Drop the claims."""
    op.execute("DROP TABLE checkout_cart_claims")
