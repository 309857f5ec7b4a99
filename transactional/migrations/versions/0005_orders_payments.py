"""Orders (partitioned by region), payments, and the sandbox card gateway's own tables.

Orders and their lines, fulfilment groups and transitions are LIST-partitioned by region with
primary keys starting (region, order_id): an order id embeds its region, so every lookup by id
is pruned to one partition (the seed's "sharded by region & order id"). Regions beyond the
default ones land in the DEFAULT partition until a migration gives them their own.

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

REGIONS = ("eu", "us", "in")  # Settings.regions' default
ORDER_STATUSES = "'placed', 'paid', 'packed', 'shipped', 'delivered', 'cancelled', 'returned'"


def _partitions(table: str) -> str:
    statements = [
        f"CREATE TABLE {table}_{region} PARTITION OF {table} FOR VALUES IN ('{region}');"
        for region in REGIONS
    ]
    statements.append(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT;")
    return "\n".join(statements)


def upgrade() -> None:
    """Create the order, payment and sandbox-gateway tables."""
    op.execute(
        f"""
        CREATE TABLE orders (
            region               TEXT        NOT NULL,
            order_id             TEXT        NOT NULL,
            checkout_id          TEXT        NOT NULL,
            customer_id          TEXT        NOT NULL,
            status               TEXT        NOT NULL CHECK (status IN ({ORDER_STATUSES})),
            currency             CHAR(3)     NOT NULL,
            subtotal_minor       BIGINT      NOT NULL CHECK (subtotal_minor >= 0),
            discount_minor       BIGINT      NOT NULL CHECK (discount_minor >= 0),
            shipping_minor       BIGINT      NOT NULL CHECK (shipping_minor >= 0),
            tax_minor            BIGINT      NOT NULL CHECK (tax_minor >= 0),
            grand_total_minor    BIGINT      NOT NULL CHECK (grand_total_minor >= 0),
            ship_country         CHAR(2)     NOT NULL,
            ship_subdivision     TEXT,
            ship_city            TEXT,
            ship_postal_code     TEXT,
            address_id           TEXT,
            payment_method       TEXT        NOT NULL,
            payment_id           TEXT,
            paid_minor           BIGINT      CHECK (paid_minor >= 0),
            refunded_minor       BIGINT      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
            placed_at            TIMESTAMPTZ NOT NULL,
            updated_at           TIMESTAMPTZ NOT NULL,
            -- A cancel or return committed before its refund and restock run; cleared when
            -- the order moves (a sweeper finishes the ones left behind by a failure).
            pending_status       TEXT        CHECK (pending_status IN ('cancelled', 'returned')),
            pending_cause        TEXT,
            pending_actor        TEXT,
            pending_note         TEXT,
            pending_since        TIMESTAMPTZ,
            -- Failed compensations of the pending change, and when the sweeper tries next
            -- (exponential backoff, so a stuck one does not starve newer ones).
            pending_attempts     INTEGER     NOT NULL DEFAULT 0 CHECK (pending_attempts >= 0),
            pending_retry_at     TIMESTAMPTZ,
            CHECK ((pending_status IS NULL) = (pending_since IS NULL)),
            PRIMARY KEY (region, order_id)
        ) PARTITION BY LIST (region);
        {_partitions("orders")}
        CREATE INDEX orders_customer ON orders (customer_id, placed_at DESC, order_id DESC);
        CREATE INDEX orders_pending ON orders (coalesce(pending_retry_at, pending_since))
            WHERE pending_status IS NOT NULL;

        -- A partitioned table cannot hold a unique key without its partition key, so the
        -- once-per-checkout claim lives here, unpartitioned and small.
        CREATE TABLE order_checkouts (
            checkout_id TEXT PRIMARY KEY,
            region      TEXT NOT NULL,
            order_id    TEXT NOT NULL,
            -- Claimed first, the order row follows in the same transaction.
            FOREIGN KEY (region, order_id) REFERENCES orders (region, order_id)
                DEFERRABLE INITIALLY DEFERRED
        );

        CREATE TABLE order_lines (
            region           TEXT    NOT NULL,
            order_id         TEXT    NOT NULL,
            line_id          TEXT    NOT NULL,
            position         INTEGER NOT NULL,
            sku              TEXT    NOT NULL,
            product_id       TEXT    NOT NULL,
            seller_id        TEXT    NOT NULL,
            title            TEXT    NOT NULL,
            quantity         INTEGER NOT NULL CHECK (quantity > 0),
            unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor >= 0),
            warehouse_id     TEXT    NOT NULL,
            group_id         TEXT    NOT NULL,
            PRIMARY KEY (region, order_id, line_id),
            FOREIGN KEY (region, order_id) REFERENCES orders (region, order_id)
                ON DELETE CASCADE
        ) PARTITION BY LIST (region);
        {_partitions("order_lines")}

        CREATE TABLE fulfilment_groups (
            region          TEXT    NOT NULL,
            order_id        TEXT    NOT NULL,
            group_id        TEXT    NOT NULL,
            position        INTEGER NOT NULL,
            seller_id       TEXT    NOT NULL,
            warehouse_id    TEXT    NOT NULL,
            status          TEXT    NOT NULL CHECK (status IN ({ORDER_STATUSES})),
            shipment_id     TEXT,
            carrier         TEXT,
            tracking_number TEXT,
            PRIMARY KEY (region, order_id, group_id),
            UNIQUE (region, order_id, seller_id, warehouse_id),
            FOREIGN KEY (region, order_id) REFERENCES orders (region, order_id)
                ON DELETE CASCADE
        ) PARTITION BY LIST (region);
        {_partitions("fulfilment_groups")}

        CREATE TABLE order_transitions (
            region      TEXT        NOT NULL,
            order_id    TEXT        NOT NULL,
            seq         INTEGER     NOT NULL,
            from_status TEXT        CHECK (from_status IN ({ORDER_STATUSES})),
            to_status   TEXT        NOT NULL CHECK (to_status IN ({ORDER_STATUSES})),
            at          TIMESTAMPTZ NOT NULL,
            cause       TEXT        NOT NULL,
            actor       TEXT        NOT NULL,
            PRIMARY KEY (region, order_id, seq),
            FOREIGN KEY (region, order_id) REFERENCES orders (region, order_id)
                ON DELETE CASCADE
        ) PARTITION BY LIST (region);
        {_partitions("order_transitions")}

        CREATE TABLE payments (
            payment_id        TEXT PRIMARY KEY,
            order_id          TEXT        NOT NULL,
            customer_id       TEXT        NOT NULL,
            region            TEXT        NOT NULL,
            amount_minor      BIGINT      NOT NULL CHECK (amount_minor > 0),
            currency          CHAR(3)     NOT NULL,
            method            TEXT        NOT NULL,
            gateway           TEXT        NOT NULL,
            status            TEXT        NOT NULL CHECK (status IN ('pending', 'authorized',
                'declined', 'captured', 'partially_refunded', 'refunded', 'voided')),
            instrument_token  TEXT        NOT NULL,
            idempotency_key   TEXT        NOT NULL UNIQUE,
            gateway_reference TEXT,
            card_brand        TEXT,
            last4             CHAR(4),
            decline_code      TEXT,
            authorization_expires_at TIMESTAMPTZ,
            captured_minor    BIGINT      NOT NULL DEFAULT 0
                CHECK (captured_minor BETWEEN 0 AND amount_minor),
            refunded_minor    BIGINT      NOT NULL DEFAULT 0
                CHECK (refunded_minor BETWEEN 0 AND captured_minor),
            created_at        TIMESTAMPTZ NOT NULL,
            updated_at        TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX payments_order ON payments (order_id);
        CREATE TABLE payment_refunds (
            refund_id    TEXT PRIMARY KEY,
            payment_id   TEXT        NOT NULL REFERENCES payments ON DELETE CASCADE,
            amount_minor BIGINT      NOT NULL CHECK (amount_minor > 0),
            currency     CHAR(3)     NOT NULL,
            reason       TEXT        NOT NULL,
            created_at   TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX payment_refunds_payment ON payment_refunds (payment_id);

        -- The sandbox gateway's own state, as an external processor would keep it.
        -- TEST MODE ONLY: the vault holds full card numbers; nothing else does.
        CREATE TABLE sandbox_gateway_vault (
            token      TEXT PRIMARY KEY,
            number     TEXT        NOT NULL,
            brand      TEXT        NOT NULL,
            last4      CHAR(4)     NOT NULL,
            exp_month  SMALLINT    NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
            exp_year   SMALLINT    NOT NULL,
            holder     TEXT        NOT NULL,
            owner      TEXT,  -- the customer the card belongs to; only they may pay with it
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE sandbox_gateway_charges (
            reference      TEXT PRIMARY KEY,
            token          TEXT        NOT NULL REFERENCES sandbox_gateway_vault,
            amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0),
            currency       CHAR(3)     NOT NULL,
            status         TEXT        NOT NULL,
            decline_code   TEXT,
            captured_minor BIGINT      NOT NULL CHECK (captured_minor BETWEEN 0 AND amount_minor),
            refunded_minor BIGINT      NOT NULL CHECK (refunded_minor BETWEEN 0 AND captured_minor),
            created_at     TIMESTAMPTZ NOT NULL,
            updated_at     TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE sandbox_gateway_requests (
            idempotency_key TEXT PRIMARY KEY,
            operation       TEXT        NOT NULL,
            fingerprint     TEXT        NOT NULL,
            result          JSONB       NOT NULL,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    """Drop the order, payment and sandbox-gateway tables."""
    op.execute(
        "DROP TABLE sandbox_gateway_requests, sandbox_gateway_charges, sandbox_gateway_vault, "
        "payment_refunds, payments, order_transitions, fulfilment_groups, order_lines, "
        "order_checkouts, orders;"
    )
