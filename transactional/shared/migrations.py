"""Run the Alembic migrations of the transactional database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from transactional.shared.db import sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; escape it for URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)
