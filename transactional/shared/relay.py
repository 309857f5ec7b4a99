"""The outbox relay: publishes committed outbox rows to Kafka, in order, at least once.

Crash safety comes from the order of operations: rows are marked published only after the broker
acknowledged them, so a relay killed at any point republishes at most one batch on restart, and
consumers drop the duplicates by event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from transactional.shared.errors import PublishFailed, RelayStandby, StoreUnavailable
from transactional.shared.ports import EventPublisher, OutboxRecord, OutboxStore, OutgoingMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one relay pass did: rows fetched, newly marked published, failed, still in flight."""

    fetched: int
    published: int
    failed: int
    in_flight: int = 0


@dataclass
class _Batch:
    records: Sequence[OutboxRecord]
    results: dict[int, str | None] = field(default_factory=dict)
    marked: int = 0
    reports: int = 0  # delivery reports seen at the last check
    progress_at: float = field(default_factory=time.monotonic)


class Relay:
    """Moves outbox rows to the event bus; one active relay per database (leader lock)."""

    def __init__(
        self,
        store: OutboxStore,
        publisher: EventPublisher,
        *,
        batch_size: int = 500,
        flush_timeout_s: float = 1.0,
        stall_timeout_s: float = 30.0,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._batch_size = batch_size
        self._flush_timeout_s = flush_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._batch: _Batch | None = None

    def relay_once(self) -> BatchResult:
        """Publish a batch (or keep waiting for the one in flight) and mark the confirmed prefix."""
        if self._batch is None:
            records = self._store.fetch_unpublished(self._batch_size)
            if not records:
                return BatchResult(0, 0, 0)
            batch = self._batch = _Batch(records)

            def on_delivery(message: OutgoingMessage, error: str | None) -> None:
                batch.results[message.ref] = error

            for record in records:
                self._publisher.publish(_to_message(record), on_delivery)
                if batch.results.get(record.id) is not None:
                    # Refused on the spot (not by the broker later): what follows could
                    # overtake it, so publish nothing more of this batch.
                    break
        batch = self._batch
        # Undelivered messages stay queued in order; refetching them now would only pile up
        # duplicates behind them, so a batch is kept until every message has a report.
        in_flight = self._publisher.flush(self._flush_timeout_s)
        delivered = _delivered_prefix(batch.records, batch.results)
        newly = delivered[batch.marked :]
        self._store.mark_published(newly)
        batch.marked = len(delivered)
        failed = sum(1 for error in batch.results.values() if error is not None)
        if in_flight == 0:
            self._batch = None
            if failed:
                first = batch.records[len(delivered)]
                log.warning(
                    "relay: %d of %d failed, republishing from outbox id %d: %s",
                    len(batch.records) - len(delivered),
                    len(batch.records),
                    first.id,
                    batch.results.get(first.id),
                )
        elif len(batch.results) > batch.reports:
            batch.reports = len(batch.results)
            batch.progress_at = time.monotonic()
        elif time.monotonic() - batch.progress_at > self._stall_timeout_s:
            # No report at all for a while: the broker may have restarted and forgotten our
            # producer id, which a queued batch never recovers from. Start over from the
            # outbox with a fresh producer session (what follows the prefix is resent).
            log.warning(
                "relay: no delivery progress for %.0fs with %d in flight; restarting the "
                "producer and republishing from outbox id %d",
                self._stall_timeout_s,
                in_flight,
                batch.records[batch.marked].id,
            )
            self._publisher.reset()
            self._batch = None
        return BatchResult(len(batch.records), len(newly), failed, in_flight)

    def run(
        self,
        stop: threading.Event,
        *,
        poll_interval_s: float = 0.05,
        max_backoff_s: float = 5.0,
        retention_s: float = 7 * 24 * 3600,
        purge_every_s: float = 3600,
    ) -> None:
        """Relay until ``stop`` is set: stand by until leader, poll, back off on failures."""
        backoff = poll_interval_s
        next_purge = time.monotonic() + purge_every_s
        while not stop.is_set():
            try:
                if not self._store.try_acquire_leadership():
                    stop.wait(1.0)  # another relay is active; stand by
                    continue
                result = self.relay_once()
                if time.monotonic() >= next_purge:
                    purged = self._store.purge_published(retention_s)
                    log.info("relay: purged %d published outbox rows", purged)
                    next_purge = time.monotonic() + purge_every_s
            except StoreUnavailable as exc:
                backoff = min(max_backoff_s, backoff * 2)
                log.warning("relay: %s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                continue
            if result.in_flight:
                continue  # relay_once already waited in flush
            if result.failed:
                backoff = min(max_backoff_s, backoff * 2)
                stop.wait(backoff)
                continue
            backoff = poll_interval_s
            if result.fetched < self._batch_size:
                stop.wait(poll_interval_s)

    def close(self) -> None:
        """Deliver what is queued and release the store (and with it the leadership)."""
        self._publisher.close()
        self._store.close()

    def drain(self, timeout_s: float = 60.0, leadership_timeout_s: float = 5.0) -> int:
        """Publish until nothing is pending; return how many were published.

        Raises ``RelayStandby`` when another relay holds the leadership, and ``PublishFailed``
        when rows are still unpublished at the deadline.
        """
        deadline = time.monotonic() + timeout_s
        standby_until = time.monotonic() + leadership_timeout_s
        while not self._store.try_acquire_leadership():
            if time.monotonic() >= standby_until:
                raise RelayStandby(
                    "another relay is active on this database and publishes the outbox: "
                    "stop it to drain from here"
                )
            time.sleep(0.2)
        total = 0
        while time.monotonic() < deadline:
            result = self.relay_once()
            total += result.published
            if result.fetched == 0:
                return total
            if result.failed and not result.in_flight:
                time.sleep(0.5)
        raise PublishFailed(
            f"outbox not drained after {timeout_s:.0f}s ({total} published): is the broker "
            "reachable and do the topics exist? (`souk status`, `souk topics`)"
        )


def _to_message(record: OutboxRecord) -> OutgoingMessage:
    return OutgoingMessage(
        topic=record.topic,
        key=record.key,
        value=record.value,
        headers=record.headers,
        ref=record.id,
    )


def _delivered_prefix(records: Sequence[OutboxRecord], errors: dict[int, str | None]) -> list[int]:
    """Ids up to the first unconfirmed row: marking past a failure could reorder an aggregate."""
    delivered: list[int] = []
    for record in records:
        if record.id not in errors or errors[record.id] is not None:
            break
        delivered.append(record.id)
    return delivered
