"""The invoicing consumer's subscription: which topics, which group, which handler.

A consumer-group member (``souk-billing``) over ``<region>.orders.v1`` and
``<region>.payments.v1`` of every region, applying each event once through the PostgreSQL
inbox in the same transaction as the documents it issues (see ``souk.billing`` for the
process that runs it). Off the checkout's hot path: a paid order's invoices appear shortly
after the ``order.paid`` event is relayed.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.registry import topic_for

GROUP = "souk-billing"


def billing_topics(regions: Sequence[str]) -> list[str]:
    """The topics invoicing reads: orders (order.paid) and payments (payment.refunded)."""
    return [topic_for(domain, region) for region in regions for domain in ("orders", "payments")]
