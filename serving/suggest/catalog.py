"""PostgreSQL adapter of the catalog titles: the listed products at start-up."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, text


class SqlCatalogTitles:
    """Active products' titles, read from the catalog's ``products`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def active_titles(self) -> Iterator[tuple[str, str]]:
        """(product id, title) of every active product, streamed."""
        with self._engine.connect() as connection:
            rows = connection.execution_options(stream_results=True, yield_per=10_000).execute(
                text("SELECT product_id, title FROM products WHERE status = 'active'")
            )
            for product_id, title in rows:
                yield str(product_id), str(title)
