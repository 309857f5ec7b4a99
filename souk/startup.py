"""What `souk up` and `souk demo` do once the servers answer: migrate, topics, replay."""

from __future__ import annotations

from collections.abc import Callable

from souk.settings import Settings
from souk.stack.endpoints import Endpoints, running_entry
from souk.stack.state import StateFile
from souk.topics import ensure_topics, planned_topics
from transactional.shared.errors import RelayStandby
from transactional.shared.migrations import upgrade_database
from transactional.shared.outbox_store import PostgresOutboxStore


def embedded_broker_identity(settings: Settings) -> tuple[int, float | None] | None:
    """(pid, start time) of our running embedded broker, or None (none, or an external one)."""
    if settings.kafka_bootstrap is not None:
        return None
    entry = running_entry(StateFile(settings.state_dir).load().get("kafka"))
    return (entry.pid, entry.create_time) if entry is not None else None


def prepare_platform(
    settings: Settings,
    endpoints: Endpoints,
    *,
    broker_before: tuple[int, float | None] | None,
    progress: Callable[[str], None],
) -> None:
    """Migrate the database, create the topics, and refill a new embedded broker."""
    upgrade_database(endpoints.database_url)
    progress("database migrated")
    created = ensure_topics(settings, endpoints.kafka_bootstrap)
    progress(f"topics ensured ({len(created)} created)")
    broker_now = embedded_broker_identity(settings)
    if broker_now is not None and broker_now != broker_before:
        # The embedded broker keeps messages in memory: a new one starts empty. The outbox is
        # the source of truth, so its retained events go out again (consumers dedupe).
        _reset_pipelines(settings, progress)
        store = PostgresOutboxStore(endpoints.database_url)
        try:
            replayed = store.republish(planned_topics(settings))
        except RelayStandby as exc:
            progress(f"new embedded broker, retained events not queued again: {exc}")
            return
        finally:
            store.close()
        if replayed:
            progress(f"new embedded broker: {replayed} retained events queued for the relay")


def _reset_pipelines(settings: Settings, progress: Callable[[str], None]) -> None:
    """Discard the streaming jobs' checkpoints: their offsets belong to the old broker.

    The republished outbox refills the new broker's topics from offset 0, so a job resumed
    from an old checkpoint would skip them; started afresh, it rebuilds its read models from
    the replay (its sinks are upserts, so they end as before).
    """
    from pipelines import control, registry

    reset = [name for name in registry.names() if control.reset(settings, name)]
    if reset:
        progress(f"new embedded broker: checkpoints of {', '.join(reset)} discarded")
