"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    """Apply migrations on one connection, serialised by an advisory lock."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by transactional.shared.migrations"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Two `souk up` at once must not race on CREATE TABLE.
        connection.exec_driver_sql("SELECT pg_advisory_lock(727001)")
        try:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
            connection.commit()


run_migrations_online()
