"""What the outbox writer refuses before anything reaches the table."""

from __future__ import annotations

import json

import pytest

from schemas.errors import InvalidPayload
from schemas.registry import REGISTRY
from transactional.shared.outbox import Outbox


def viewed(region: str = "eu", product_id: str = "prd-1") -> object:
    return REGISTRY.new_event(
        "product.viewed", {"session_id": "ses-1", "product_id": product_id}, region=region
    )


def test_a_row_carries_topic_key_value_and_headers() -> None:
    event = viewed()
    [row] = Outbox(regions=["eu", "us"]).rows([event])  # type: ignore[list-item]
    assert row["topic"] == "eu.behaviour.v1"
    assert row["message_key"] == "ses-1"
    assert REGISTRY.decode(row["value"]) == event
    assert json.loads(row["headers"])["event_type"] == "product.viewed"


def test_an_event_of_a_region_not_served_is_refused_naming_the_setting() -> None:
    with pytest.raises(
        InvalidPayload, match=r"region 'zz' is not served here \(SOUK_REGIONS=eu,us\)"
    ):
        Outbox(regions=["us", "eu"]).rows([viewed(region="zz")])  # type: ignore[list-item]


def test_an_event_over_the_message_limit_is_refused_naming_the_setting() -> None:
    big = viewed(product_id="p" * 120)
    # The limit counts value, key and headers: what the producer will be asked to send.
    with pytest.raises(InvalidPayload, match="over the 700-byte message limit"):
        Outbox(regions=["eu"], max_message_bytes=700).rows([viewed(), big])  # type: ignore[list-item]
    assert Outbox(regions=["eu"], max_message_bytes=800).rows([big])  # type: ignore[list-item]
