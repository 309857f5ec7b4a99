"""Earlier visits of the simulated shoppers, as the events an older platform would have kept.

A live demo shops for a minute: a few events per customer, too little for a collaborative
model to learn anyone's tastes. A shop that adopts Souk brings its clickstream along; this
module plays that history from the same seeded shoppers (same profiles, same tastes) over the
weeks before a run, as product views and cart additions of the accounts the live run
registered. Pure: envelopes out, no I/O (``jobs.archive.import_envelopes`` writes them).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from schemas.envelope import Envelope
from schemas.registry import REGISTRY
from souk.simulation.model import SessionPlan, ShopperModel

#: History sessions are numbered from here, apart from any live run's sessions.
FIRST_HISTORY_SESSION = 10_000_000


def _event_id(rng: random.Random) -> uuid.UUID:
    # Seeded ids: the same history imports as the same events (exactly once by event id).
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _envelope(
    rng: random.Random,
    event_type: str,
    aggregate_id: str,
    region: str,
    at: datetime,
    payload: dict[str, object],
) -> Envelope:
    spec = REGISTRY.spec(event_type, 1)
    envelope = Envelope(
        event_id=_event_id(rng),
        event_type=event_type,
        schema_version=1,
        occurred_at=at,
        aggregate_type=spec.aggregate_type,
        aggregate_id=aggregate_id,
        region=region,
        payload=payload,
    )
    REGISTRY.validate(envelope)  # a history event is held to the live contract
    return envelope


def session_events(
    model: ShopperModel, plan: SessionPlan, customer_id: str, at: datetime
) -> Iterator[Envelope]:
    """The views and cart additions of one planned session, signed in as ``customer_id``."""
    profile = model.profiles[plan.shopper]
    # Seeded by the customer too: the same plan replayed for another account (a later run's
    # registration) is other events, not a duplicate of the first account's.
    rng = random.Random(f"history/{model.config.seed}/{plan.index}/{customer_id}")
    session_id = f"ses_h{plan.index:x}"
    cart_id = f"crt_h{plan.index:x}"
    moment = at
    for view in plan.views:
        moment += timedelta(seconds=rng.randint(5, 90))
        yield _envelope(
            rng,
            "product.viewed",
            session_id,
            profile.region,
            moment,
            {
                "session_id": session_id,
                "customer_id": customer_id,
                "product_id": view.product_id,
                "sku": view.sku,
                "source": view.source,
                "position": view.position,
            },
        )
    for line in plan.lines:
        moment += timedelta(seconds=rng.randint(5, 60))
        sku = model.catalog.sku(line.sku)
        product = model.catalog.product(sku.product_id)
        yield _envelope(
            rng,
            "cart.item_added",
            cart_id,
            profile.region,
            moment,
            {
                "cart_id": cart_id,
                "session_id": session_id,
                "customer_id": customer_id,
                "sku": line.sku,
                "product_id": product.product_id,
                "seller_id": product.seller_id,
                "quantity": line.quantity,
                "quantity_in_cart": line.quantity,
                "unit_price": {
                    "amount_minor": sku.prices.get(profile.currency, 0),
                    "currency": profile.currency,
                },
            },
        )


def history_events(
    model: ShopperModel,
    customer_ids: Mapping[int, str],
    *,
    sessions: int,
    end: datetime,
    span: timedelta,
) -> Iterator[Envelope]:
    """``sessions`` honest past sessions of the shoppers in ``customer_ids`` (index → id),
    spread evenly over the ``span`` before ``end``; fraud-like and unregistered shoppers'
    sessions are passed over (at most 20 plans drawn per session kept)."""
    if sessions <= 0 or not customer_ids:
        return
    start = end - span
    step = span / sessions
    kept = 0
    for index in range(FIRST_HISTORY_SESSION, FIRST_HISTORY_SESSION + 20 * sessions):
        plan = model.session(index)
        customer_id = customer_ids.get(plan.shopper)
        if plan.fraud or customer_id is None or not plan.views:
            continue
        yield from session_events(model, plan, customer_id, start + step * kept)
        kept += 1
        if kept == sessions:
            return
