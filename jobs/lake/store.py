"""Which table store the settings select, and where the lake is."""

from __future__ import annotations

from jobs.lake.delta_rs import DeltaRsStore
from jobs.lake.port import TableStore
from souk.settings import Settings


def lake_root(settings: Settings) -> str:
    """``SOUK_LAKE_URI`` (a path or ``s3://...``), else ``SOUK_HOME/lake``."""
    if settings.lake_uri:
        uri = settings.lake_uri
        return uri[len("file://") :] if uri.startswith("file://") else uri
    return str(settings.state_dir / "lake")


def table_store(settings: Settings) -> TableStore:
    """The lake's table store for processes without Spark (the archiver, the CLI, models)."""
    return DeltaRsStore(lake_root(settings))
