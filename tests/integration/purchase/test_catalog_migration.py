"""Migration 0003 on a scratch database: tables, seeded taxonomy, and a clean downgrade."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from souk.stack.endpoints import Endpoints
from transactional.shared.db import create_db_engine, sqlalchemy_url
from transactional.shared.migrations import alembic_config, upgrade_database

TABLES = {"sellers", "seller_kyc_transitions", "categories", "products", "product_variants"}


@pytest.fixture
def scratch_url(endpoints: Endpoints) -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"souk_mig_{secrets.token_hex(4)}"
    admin = create_engine(sqlalchemy_url(endpoints.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(endpoints.database_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    db = create_db_engine(url, pool_size=1)
    try:
        with db.connect() as connection:
            return set(
                connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
    finally:
        db.dispose()


def test_upgrade_seeds_the_taxonomy_and_downgrade_removes_everything(scratch_url: str) -> None:
    upgrade_database(scratch_url, "0003")
    assert _tables(scratch_url) >= TABLES
    db = create_db_engine(scratch_url, pool_size=1)
    try:
        with db.connect() as connection:
            rows = connection.execute(
                text("SELECT category_id, parent_id FROM categories ORDER BY category_id")
            ).all()
            indexes = set(
                connection.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'products'")
                ).scalars()
            )
    finally:
        db.dispose()
    roots = [r.category_id for r in rows if r.parent_id is None]
    assert len(roots) == 8 and "cat_home_kitchen" in roots
    for root in roots:
        children = [r for r in rows if r.parent_id == root]
        assert 2 <= len(children) <= 4
        assert all(r.category_id.startswith(root + "_") for r in children)
    assert "cat_electronics_phones" in {r.category_id for r in rows}
    assert "products_shard" in indexes

    command.downgrade(alembic_config(scratch_url), "0002")
    assert not TABLES & _tables(scratch_url)
    upgrade_database(scratch_url, "0003")  # and back up again
    assert _tables(scratch_url) >= TABLES
