"""Sellers with their KYC history; the catalog: categories (seeded), products, SKUs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The default taxonomy: (root id, root name, [(child id suffix, child name), ...]).
# Ids are stable: products, search facets and analytics refer to them.
TAXONOMY: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "electronics",
        "Electronics",
        [("phones", "Phones"), ("laptops", "Laptops"), ("audio", "Audio"), ("cameras", "Cameras")],
    ),
    (
        "fashion",
        "Fashion",
        [
            ("men", "Men's Clothing"),
            ("women", "Women's Clothing"),
            ("shoes", "Shoes"),
            ("accessories", "Accessories"),
        ],
    ),
    (
        "home_kitchen",
        "Home & Kitchen",
        [("cookware", "Cookware"), ("furniture", "Furniture"), ("bedding", "Bedding")],
    ),
    (
        "books",
        "Books",
        [("fiction", "Fiction"), ("non_fiction", "Non-fiction"), ("children", "Children's Books")],
    ),
    ("sports", "Sports", [("fitness", "Fitness"), ("outdoor", "Outdoor"), ("cycling", "Cycling")]),
    (
        "beauty",
        "Beauty",
        [("skincare", "Skincare"), ("makeup", "Makeup"), ("fragrance", "Fragrance")],
    ),
    (
        "grocery",
        "Grocery",
        [("snacks", "Snacks"), ("beverages", "Beverages"), ("pantry", "Pantry Staples")],
    ),
    (
        "toys",
        "Toys",
        [
            ("building", "Building Sets"),
            ("board_games", "Board Games"),
            ("dolls", "Dolls & Figures"),
        ],
    ),
]


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def upgrade() -> None:
    """Create sellers, seller_kyc_transitions, categories (seeded), products, product_variants."""
    op.execute(
        """
        CREATE TABLE sellers (
            seller_id     TEXT PRIMARY KEY,
            -- One seller account per customer (no cross-slice foreign key: separate services).
            customer_id   TEXT        NOT NULL UNIQUE,
            legal_name    TEXT        NOT NULL,
            display_name  TEXT        NOT NULL,
            business_type TEXT        NOT NULL CHECK (business_type IN ('individual', 'company')),
            country       CHAR(2)     NOT NULL,
            region        TEXT        NOT NULL,
            documents     JSONB       NOT NULL CHECK (jsonb_typeof(documents) = 'array'),
            kyc_status    TEXT        NOT NULL
                          CHECK (kyc_status IN ('pending', 'approved', 'rejected')),
            created_at    TIMESTAMPTZ NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX sellers_kyc_queue ON sellers (kyc_status, created_at, seller_id);
        CREATE TABLE seller_kyc_transitions (
            transition_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            seller_id     TEXT        NOT NULL REFERENCES sellers ON DELETE CASCADE,
            from_status   TEXT,        -- NULL: the application itself
            to_status     TEXT        NOT NULL,
            at            TIMESTAMPTZ NOT NULL,
            reviewer_id   TEXT,        -- NULL: the applicant
            reason        TEXT
        );
        CREATE INDEX seller_kyc_transitions_seller ON seller_kyc_transitions (seller_id, at);

        CREATE TABLE categories (
            category_id TEXT PRIMARY KEY,
            parent_id   TEXT REFERENCES categories,
            name        TEXT        NOT NULL,
            slug        TEXT        NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX categories_sibling_slug ON categories (COALESCE(parent_id, ''), slug);
        CREATE INDEX categories_parent ON categories (parent_id);

        CREATE TABLE products (
            product_id  TEXT PRIMARY KEY,
            -- Also the id's prefix: a sharded deployment routes by it.
            shard       SMALLINT    NOT NULL CHECK (shard BETWEEN 0 AND 255),
            seller_id   TEXT        NOT NULL,
            title       TEXT        NOT NULL,
            description TEXT        NOT NULL DEFAULT '',
            brand       TEXT,
            category_id TEXT        NOT NULL REFERENCES categories,
            attributes  JSONB       NOT NULL CHECK (jsonb_typeof(attributes) = 'object'),
            images      JSONB       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(images) = 'array'),
            currency    CHAR(3)     NOT NULL,
            status      TEXT        NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
            version     INTEGER     NOT NULL DEFAULT 1 CHECK (version >= 1),
            created_at  TIMESTAMPTZ NOT NULL,
            updated_at  TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX products_shard ON products (shard);
        CREATE INDEX products_recent ON products (created_at DESC, product_id DESC)
            WHERE status = 'active';
        CREATE INDEX products_category ON products (category_id, created_at DESC, product_id DESC)
            WHERE status = 'active';
        CREATE INDEX products_seller ON products (seller_id, created_at DESC, product_id DESC);

        CREATE TABLE product_variants (
            sku        TEXT PRIMARY KEY,  -- globally unique
            product_id TEXT     NOT NULL REFERENCES products ON DELETE CASCADE,
            position   SMALLINT NOT NULL,
            attributes JSONB    NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
            -- {"EUR": 1999, ...}: integer minor units per ISO currency.
            prices     JSONB    NOT NULL CHECK (jsonb_typeof(prices) = 'object'),
            UNIQUE (product_id, position)
        );
        """
    )
    categories = sa.table(
        "categories",
        sa.column("category_id", sa.Text),
        sa.column("parent_id", sa.Text),
        sa.column("name", sa.Text),
        sa.column("slug", sa.Text),
    )
    rows: list[dict[str, str | None]] = []
    for root, root_name, children in TAXONOMY:
        root_id = f"cat_{root}"
        rows.append(
            {"category_id": root_id, "parent_id": None, "name": root_name, "slug": _slug(root_name)}
        )
        rows.extend(
            {
                "category_id": f"{root_id}_{child}",
                "parent_id": root_id,
                "name": name,
                "slug": _slug(name),
            }
            for child, name in children
        )
    op.bulk_insert(categories, rows)


def downgrade() -> None:
    """Drop the seller and catalog tables."""
    op.execute(
        "DROP TABLE product_variants; DROP TABLE products; DROP TABLE categories; "
        "DROP TABLE seller_kyc_transitions; DROP TABLE sellers;"
    )
