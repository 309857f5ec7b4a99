"""Keeps the search index current from events: catalog snapshots, prices, stock, popularity.

source  ``<region>.{catalog,inventory,behaviour,carts,orders}.v1`` of every configured region
        (consumer group ``souk-search-indexer``)
apply   product snapshots replace a document unless it holds a newer ``product_version``;
        ``product.price_changed`` applies only over its ``old_price`` (a replayed change never
        undoes a later one); stock sets a SKU's availability per warehouse unless a later
        movement already did (event time); views, carts and purchases add popularity
sink    the SearchIndex port: upsert, then one commit per batch (tantivy: visible at once)

At least once: Kafka offsets are committed after the index commit. Replays are harmless for
snapshots, prices and stock (versions, compare-and-set, stamps); popularity is a ranking
signal and may count a replayed event twice (event ids seen recently are skipped).
A reindex swaps in a version built from PostgreSQL; events the indexer applied to the old
version meanwhile are applied again to the new one from a short replay buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from confluent_kafka import Consumer, Message, TopicPartition

from schemas.behaviour import ProductViewed
from schemas.carts import CartItemAdded
from schemas.catalog import ProductCreated, ProductPriceChanged, ProductUpdated
from schemas.envelope import Envelope
from schemas.inventory import StockAdjusted, StockReleased, StockReserved
from schemas.orders import OrderPlaced
from schemas.registry import REGISTRY, SchemaError, topic_for
from serving.search.model import ProductDoc, apply_snapshot, set_stock
from serving.search.ports import SearchIndex
from transactional.shared.kafka import (
    LIBRDKAFKA_LOG,
    KafkaClientSettings,
    consume_batch,
    consumer_config,
)

log = logging.getLogger(__name__)

GROUP = "souk-search-indexer"
DOMAINS = ("catalog", "inventory", "behaviour", "carts", "orders")
_PRIME_VALUES = frozenset({"true", "yes", "1"})


def micros(at: datetime) -> int:
    """Epoch microseconds of an aware datetime."""
    return int(at.timestamp() * 1_000_000)


def doc_from_snapshot(
    snapshot: ProductCreated | ProductUpdated, region: str, occurred_at: datetime
) -> ProductDoc:
    """A document from a catalog snapshot (stock and popularity start empty)."""
    return ProductDoc(
        product_id=snapshot.product_id,
        region=region,
        seller_id=snapshot.seller_id,
        version=snapshot.product_version,
        title=snapshot.title,
        description=snapshot.description,
        brand=snapshot.brand,
        category_id=snapshot.category_id,
        category_path=list(snapshot.category_path),
        status=snapshot.status,
        currency=snapshot.price.currency,
        price_minor=snapshot.price.amount_minor,
        skus=[v.sku for v in snapshot.variants],
        prime=snapshot.prime_eligible
        or snapshot.attributes.get("prime", "").lower() in _PRIME_VALUES,
        image_url=snapshot.image_urls[0] if snapshot.image_urls else None,
        created_us=micros(occurred_at),
    )


@dataclass(frozen=True)
class PopularityWeights:
    """What one view, one unit put in a cart and one unit bought add to popularity."""

    view: float = 1.0
    cart: float = 3.0
    purchase: float = 5.0


@dataclass
class IndexerStats:
    """What the indexer did so far."""

    batches: int = 0
    events: int = 0
    upserts: int = 0
    stale: int = 0  # snapshots or movements older than what the index holds
    pending_stock: int = 0  # stock for SKUs whose product was not indexed yet
    rejected: int = 0  # records that are not valid envelopes
    replays: int = 0  # version swaps followed by a replay


@dataclass
class EventApplier:
    """Applies a batch of typed events to documents read from (and written to) the index."""

    index: SearchIndex
    weights: PopularityWeights = field(default_factory=PopularityWeights)
    stats: IndexerStats = field(default_factory=IndexerStats)
    max_pending: int = 100_000
    # sku -> [(warehouse, available, stamp)] for products not indexed yet
    _pending: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def apply(
        self, events: Sequence[tuple[Envelope, msgspec.Struct]], *, popularity: bool = True
    ) -> int:
        """Apply ``events`` in order; upsert what changed (no commit). Returns documents written."""
        docs: dict[str, ProductDoc | None] = {}  # product id -> doc (None: not indexed)
        by_sku: dict[str, str] = {}
        changed: set[str] = set()
        self._load(events, docs, by_sku)
        for envelope, payload in events:
            self.stats.events += 1
            if isinstance(payload, ProductCreated | ProductUpdated):
                snapshot = doc_from_snapshot(payload, envelope.region, envelope.occurred_at)
                current = docs.get(payload.product_id)
                merged = apply_snapshot(current, snapshot)
                if merged is None:
                    self.stats.stale += 1
                    continue
                for sku in merged.skus:
                    by_sku[sku] = merged.product_id
                    for warehouse, available, stamp in self._pending.pop(sku, []):
                        set_stock(merged, sku, warehouse, available, stamp)
                docs[merged.product_id] = merged
                changed.add(merged.product_id)
            elif isinstance(payload, ProductPriceChanged):
                doc = docs.get(payload.product_id)
                if (
                    doc is not None
                    and doc.skus[:1] == [payload.sku]
                    and doc.currency == payload.old_price.currency
                    and doc.price_minor == payload.old_price.amount_minor
                ):
                    doc.price_minor = payload.new_price.amount_minor
                    changed.add(doc.product_id)
            elif isinstance(payload, StockAdjusted | StockReserved | StockReleased):
                if payload.available_after is None:
                    continue
                stamp = micros(envelope.occurred_at)
                owner = by_sku.get(payload.sku)
                doc = docs.get(owner) if owner else None
                if doc is None:
                    self._park(payload.sku, payload.warehouse_id, payload.available_after, stamp)
                elif set_stock(
                    doc, payload.sku, payload.warehouse_id, payload.available_after, stamp
                ):
                    changed.add(doc.product_id)
                else:
                    self.stats.stale += 1
            elif popularity and self._first_time(str(envelope.event_id)):
                for product_id, amount in self._popularity(payload):
                    doc = docs.get(product_id)
                    if doc is not None:
                        doc.popularity += amount
                        changed.add(product_id)
        written = [d for pid in changed if (d := docs.get(pid)) is not None]
        if written:
            self.index.upsert(written)
        self.stats.upserts += len(written)
        return len(written)

    def _load(
        self,
        events: Sequence[tuple[Envelope, msgspec.Struct]],
        docs: dict[str, ProductDoc | None],
        by_sku: dict[str, str],
    ) -> None:
        """Read every document the batch touches, by product id (per region) and by SKU."""
        wanted: dict[str, set[str]] = {}
        skus: set[str] = set()
        anywhere: set[str] = set()
        for envelope, payload in events:
            if isinstance(payload, ProductCreated | ProductUpdated | ProductPriceChanged):
                wanted.setdefault(envelope.region, set()).add(payload.product_id)
            elif isinstance(payload, StockAdjusted | StockReserved | StockReleased):
                skus.add(payload.sku)
            else:
                anywhere.update(pid for pid, _ in self._popularity(payload))
        for region, ids in wanted.items():
            docs.update(self.index.get(region, sorted(ids)))
        if skus:
            for sku, doc in self.index.find_by_sku(sorted(skus)).items():
                docs.setdefault(doc.product_id, doc)
                by_sku[sku] = doc.product_id
        if anywhere - set(docs):
            for region in self._regions():
                missing = sorted(anywhere - set(docs))
                if not missing:
                    break
                docs.update(self.index.get(region, missing))
        for held in list(docs.values()):
            if held is not None:
                for sku in held.skus:
                    by_sku.setdefault(sku, held.product_id)

    def _regions(self) -> Sequence[str]:
        return list(getattr(self.index, "regions", ()))

    def _popularity(self, payload: msgspec.Struct) -> list[tuple[str, float]]:
        if isinstance(payload, ProductViewed):
            return [(payload.product_id, self.weights.view)]
        if isinstance(payload, CartItemAdded):
            return [(payload.product_id, self.weights.cart * payload.quantity)]
        if isinstance(payload, OrderPlaced):
            return [
                (line.product_id, self.weights.purchase * line.quantity) for line in payload.lines
            ]
        return []

    def _park(self, sku: str, warehouse: str, available: int, stamp: int) -> None:
        if len(self._pending) >= self.max_pending and sku not in self._pending:
            self._pending.pop(next(iter(self._pending)))
        self._pending.setdefault(sku, []).append((warehouse, available, stamp))
        self.stats.pending_stock += 1

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > 200_000:
            self._seen.popitem(last=False)
        return True


def indexed_topics(regions: Sequence[str]) -> list[str]:
    """The topics the indexer reads."""
    return [topic_for(domain, region) for region in regions for domain in DOMAINS]


class SearchIndexer:
    """A consumer-group member keeping the index current; commit per batch, offsets after."""

    def __init__(
        self,
        index: SearchIndex,
        regions: Sequence[str],
        kafka: KafkaClientSettings,
        *,
        group: str = GROUP,
        weights: PopularityWeights | None = None,
        batch_wait_s: float = 0.5,
        batch_max: int = 2000,
        replay_window_s: float = 600.0,
    ) -> None:
        self.index = index
        self.regions = list(regions)
        self.applier = EventApplier(index, weights or PopularityWeights())
        self.batch_wait_s = batch_wait_s
        self.batch_max = batch_max
        self.replay_window_s = replay_window_s
        self.consumer = Consumer(consumer_config(kafka, group), logger=LIBRDKAFKA_LOG)
        self.assigned = threading.Event()
        self._replay: deque[tuple[float, Envelope, msgspec.Struct]] = deque()
        self._versions: dict[str, str | None] = {}

    @property
    def stats(self) -> IndexerStats:
        """Counts so far."""
        return self.applier.stats

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.set()

    def _decode(self, messages: Sequence[Message]) -> list[tuple[Envelope, msgspec.Struct]]:
        events = []
        for message in messages:
            try:
                envelope = REGISTRY.decode(message.value() or b"")
                events.append((envelope, REGISTRY.validate(envelope)))
            except SchemaError as exc:
                self.applier.stats.rejected += 1
                log.warning("search indexer: skipping a record of %s: %s", message.topic(), exc)
        return events

    def _follow_versions(self) -> None:
        """After a swap or rollback, apply the recent catalog and stock events again."""
        current = {region: self.index.current_version(region) for region in self.regions}
        moved = [r for r in self.regions if r in self._versions and current[r] != self._versions[r]]
        self._versions = current
        if moved and self._replay:
            self.applier.apply([(e, p) for _, e, p in self._replay], popularity=False)
            self.index.commit()
            self.applier.stats.replays += 1

    def process(self, messages: Sequence[Message]) -> int:
        """Apply one batch and commit it to the index; returns documents written."""
        self._follow_versions()
        events = self._decode(messages)
        written = self.applier.apply(events) if events else 0
        if written:
            self.index.commit()
        now = time.monotonic()
        for envelope, payload in events:
            if not isinstance(payload, ProductViewed | CartItemAdded | OrderPlaced):
                self._replay.append((now, envelope, payload))
        while self._replay and now - self._replay[0][0] > self.replay_window_s:
            self._replay.popleft()
        self.applier.stats.batches += 1
        return written

    def poll_batch(self) -> list[Message]:
        """Up to ``batch_max`` records within ``batch_wait_s``; latency first: what the first
        poll brings is applied instead of filling the batch."""
        return consume_batch(
            self.consumer,
            max_records=self.batch_max,
            wait_s=self.batch_wait_s,
            who="search indexer",
            first_only=True,
        )

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> IndexerStats:
        """Index until ``stop`` (or ``idle_exit_s`` without records once assigned)."""
        self.consumer.subscribe(indexed_topics(self.regions), on_assign=self._on_assign)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                batch = self.poll_batch()
                if batch:
                    self.process(batch)
                    self._commit_offsets(batch)
                    idle_since = time.monotonic()
                else:
                    self._follow_versions()
                    if (
                        idle_exit_s is not None
                        and self.assigned.is_set()
                        and time.monotonic() - idle_since >= idle_exit_s
                    ):
                        break
        finally:
            self.consumer.close()
        return self.stats

    def _commit_offsets(self, messages: Sequence[Message]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            ends[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        try:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=True
            )
        except Exception as exc:  # a lost commit means a replay, which the index absorbs
            log.warning("search indexer: offset commit failed: %s", exc)


def index_forever(
    index: SearchIndex,
    regions: Sequence[str],
    kafka: KafkaClientSettings,
    stop: threading.Event,
    *,
    retry_s: float = 5.0,
    weights: PopularityWeights | None = None,
    replay_window_s: float = 600.0,
) -> None:
    """Run the indexer until ``stop``; an error is logged and it starts again."""
    while not stop.is_set():
        try:
            SearchIndexer(
                index, regions, kafka, weights=weights, replay_window_s=replay_window_s
            ).run(stop)
        except Exception:
            log.exception("search indexer failed; restarting in %.0f s", retry_s)
            stop.wait(retry_s)


def weights_of(settings_weights: Mapping[str, float]) -> PopularityWeights:
    """Popularity weights from a mapping (view, cart, purchase)."""
    return PopularityWeights(**{k: float(v) for k, v in settings_weights.items()})
