"""Where a checkout comes from and what pays: the device id, the client's address behind
trusted proxies, its region, and the card's stable id, all carried by ``checkout.started``."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

from schemas.checkout import CheckoutStarted
from schemas.examples import EXAMPLES
from serving.problems import status_of
from souk.settings import Settings
from tests.unit.checkout.fakes import CARD, OTHER, SHOPPER, ready, request
from transactional.checkout.dto import ClientNetworks
from transactional.checkout.model import (
    ClientContext,
    DeviceIdInvalid,
    IdempotencyKeyReused,
    PaymentMethod,
    check_device_id,
    instrument_id_of,
)
from transactional.shared.regions import ip_region_table, region_of_ip

REGIONS = {"eu": ["10.1.0.0/16"], "us": ["10.2.0.0/16", "2001:db8:2::/48"], "in": ["10.3.0.0/16"]}
NETWORKS = ClientNetworks.of(["127.0.0.0/8", "::1/128", "192.168.7.0/24"], REGIONS)
CONTEXT = ClientContext(device_id="dev-1", client_ip="10.1.2.3", ip_region="eu")


# -- the device id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good", ["a", "dev-1", "A.b_c:d-9", "x" * 128, "  padded  ", "550e8400-e29b-41d4-a716"]
)
def test_a_device_id_is_1_to_128_safe_characters(good: str) -> None:
    assert check_device_id(good) == good.strip()


@pytest.mark.parametrize("bad", ["", "   ", "x" * 129, "dev 1", "dev/1", "dév", "a;b", "a\x00"])
def test_a_malformed_device_id_is_a_400(bad: str) -> None:
    with pytest.raises(DeviceIdInvalid) as refused:
        check_device_id(bad)
    assert status_of(refused.value) == 400
    assert refused.value.code == "device_id_invalid"


def test_no_device_id_is_none() -> None:
    assert check_device_id(None) is None


# -- the client's address --------------------------------------------------------------------


def test_an_untrusted_peer_is_the_client_and_its_forwarded_for_is_ignored() -> None:
    assert NETWORKS.client_ip("203.0.113.9", "10.1.2.3") == "203.0.113.9"
    assert NETWORKS.client_ip("203.0.113.9", None) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client_in_forwarded_for() -> None:
    assert NETWORKS.client_ip("127.0.0.1", "10.1.2.3") == "10.1.2.3"
    assert NETWORKS.client_ip("::1", "2001:db8:2::7") == "2001:db8:2::7"
    assert NETWORKS.client_ip("127.0.0.1", None) == "127.0.0.1"  # no header: the peer


def test_the_client_is_the_nearest_untrusted_hop_what_it_wrote_itself_proves_nothing() -> None:
    # The client prepended a forged address; our proxies appended the real hops.
    chain = "6.6.6.6, 10.1.2.3, 192.168.7.20"
    assert NETWORKS.client_ip("127.0.0.1", chain) == "10.1.2.3"
    # Every hop is ours: the first one is where the request came from.
    assert NETWORKS.client_ip("127.0.0.1", "192.168.7.1, 127.0.0.2") == "192.168.7.1"


def test_forwarded_hops_may_carry_ports_and_mapped_addresses() -> None:
    assert NETWORKS.client_ip("127.0.0.1", "10.1.2.3:5555") == "10.1.2.3"
    assert NETWORKS.client_ip("127.0.0.1", "[2001:db8:2::7]:443") == "2001:db8:2::7"
    assert NETWORKS.client_ip("::ffff:127.0.0.1", "::ffff:10.1.2.3") == "10.1.2.3"


def test_a_client_that_is_not_an_address_is_unknown() -> None:
    assert NETWORKS.client_ip("127.0.0.1", "unknown") is None
    assert NETWORKS.client_ip("127.0.0.1", "10.1.2.3, garbage") is None
    assert NETWORKS.client_ip("testclient", "10.1.2.3") is None  # not even the peer is one
    assert NETWORKS.client_ip(None, "10.1.2.3") is None


def test_the_context_has_the_device_the_address_and_its_region() -> None:
    context = NETWORKS.context("127.0.0.1", "10.2.9.9", "dev-7")
    assert context == ClientContext(device_id="dev-7", client_ip="10.2.9.9", ip_region="us")
    assert NETWORKS.context("203.0.113.9", "10.2.9.9", None) == ClientContext(
        client_ip="203.0.113.9"
    )
    with pytest.raises(DeviceIdInvalid):
        NETWORKS.context("127.0.0.1", "10.2.9.9", "no spaces")


# -- the region of an address ----------------------------------------------------------------


def test_an_address_maps_to_the_region_of_its_most_specific_range() -> None:
    table = ip_region_table({"eu": ["10.0.0.0/8"], "us": ["10.2.0.0/16"], "in": ["::/0"]})
    assert region_of_ip("10.1.2.3", table) == "eu"
    assert region_of_ip("10.2.2.3", table) == "us"  # the longer prefix wins
    assert region_of_ip("2001:db8::1", table) == "in"
    assert region_of_ip("192.0.2.1", table) is None
    assert region_of_ip("::ffff:10.2.0.1", table) == "us"
    assert region_of_ip("not-an-ip", table) is None
    assert region_of_ip("10.3.0.1", REGIONS) == "in"  # a plain mapping works too
    assert region_of_ip("10.3.0.1", ()) is None


# -- the settings ----------------------------------------------------------------------------


def test_settings_default_to_loopback_proxies_and_three_private_ranges() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.trusted_proxies == ["127.0.0.0/8", "::1/128"]
    assert settings.ip_regions == {
        "eu": ["10.1.0.0/16"],
        "us": ["10.2.0.0/16"],
        "in": ["10.3.0.0/16"],
    }


def test_settings_read_proxies_and_ranges_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOUK_TRUSTED_PROXIES", "10.0.0.5, 172.16.0.0/12")
    monkeypatch.setenv("SOUK_IP_REGIONS", "EU=10.1.0.0/16, us=10.2.0.0/16,eu=2001:db8::/32")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.trusted_proxies == ["10.0.0.5/32", "172.16.0.0/12"]
    assert settings.ip_regions == {"eu": ["10.1.0.0/16", "2001:db8::/32"], "us": ["10.2.0.0/16"]}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOUK_TRUSTED_PROXIES", "localhost"),
        ("SOUK_IP_REGIONS", "eu"),
        ("SOUK_IP_REGIONS", "eu=10.1.0.0/33"),
        ("SOUK_IP_REGIONS", "e u=10.1.0.0/16"),
        ("SOUK_IP_REGIONS", "eu=10.1.0.0/16,us=10.1.0.0/16"),
    ],
)
def test_settings_refuse_malformed_networks(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings(_env_file=None)  # type: ignore[call-arg]


# -- the card's stable id --------------------------------------------------------------------


def test_the_instrument_id_is_the_same_card_whoever_types_it() -> None:
    key = b"k"
    same = instrument_id_of(CARD, key)
    assert instrument_id_of(replace(CARD, holder="Someone Else", cvc="999"), key) == same
    assert instrument_id_of(replace(CARD, number="4242 4242 4242 4242"), key) == same
    assert instrument_id_of(replace(CARD, exp_year=CARD.exp_year % 100), key) == same
    assert instrument_id_of(replace(CARD, exp_month=11), key) != same  # a reissued card
    assert instrument_id_of(replace(CARD, number="4000000000000002"), key) != same
    assert instrument_id_of(CARD, b"other key") != same
    assert same.startswith("card_") and CARD.number not in same and len(same) <= 128


# -- checkout.started ------------------------------------------------------------------------


def started(h: object) -> list[dict[str, object]]:
    return h.world.events("checkout.started")  # type: ignore[attr-defined,no-any-return]


def test_checkout_started_says_where_the_checkout_comes_from_and_which_card_pays() -> None:
    h = ready()
    h.checkout(replace(request(), context=CONTEXT))
    (event,) = started(h)
    assert event["device_id"] == "dev-1"
    assert event["client_ip"] == "10.1.2.3"
    assert event["ip_region"] == "eu"
    assert event["instrument_id"] == instrument_id_of(CARD, b"test-card-key")
    # Valid against the schema as published.
    msgspec.convert(event, CheckoutStarted)


def test_without_a_context_the_fields_are_none() -> None:
    h = ready()
    h.checkout()
    (event,) = started(h)
    assert (event["device_id"], event["client_ip"], event["ip_region"]) == (None, None, None)
    assert event["instrument_id"] is not None  # the card is known all the same


def test_one_card_has_one_instrument_id_across_customers() -> None:
    h = ready()
    h.world.add_cart(cart_id="crt_2", customer_id=OTHER.customer_id)
    h.checkout(replace(request(), context=CONTEXT))
    h.checkout(replace(request("crt_2"), context=CONTEXT), key="key-2", principal=OTHER)
    first, second = started(h)
    assert first["customer_id"] != second["customer_id"]
    assert first["instrument_id"] == second["instrument_id"]
    # The vault tokens differ: they are per customer.
    assert len({payment.instrument_token for payment in h.world.payments()}) == 2


def test_a_saved_card_has_no_instrument_id() -> None:
    h = ready()
    h.world.owners["tok_ok_mine"] = SHOPPER.customer_id
    h.checkout(replace(request(), payment=PaymentMethod(token="tok_ok_mine"), context=CONTEXT))
    (event,) = started(h)
    assert event["instrument_id"] is None and event["device_id"] == "dev-1"


def test_a_checkout_refused_for_stock_still_says_where_it_came_from() -> None:
    h = ready()
    # Another shopper's checkout takes the last units between our reads and our gate.
    h.world.on_call("payments.tokenize", lambda: h.world.take("sku_b", 10))
    reply = h.checkout(replace(request(), context=CONTEXT))
    assert reply.response.status == 409
    assert h.world.event_types() == ["checkout.started", "checkout.failed"]
    (event,) = started(h)
    assert (event["device_id"], event["ip_region"]) == ("dev-1", "eu")


def test_a_retry_from_another_network_replays_the_first_answer() -> None:
    h = ready()
    first = h.checkout(replace(request(), context=CONTEXT))
    moved = ClientContext(device_id="dev-1", client_ip="10.2.0.1", ip_region="us")
    again = h.checkout(replace(request(), context=moved))
    assert again.replayed and again.checkout_id == first.checkout_id
    assert len(started(h)) == 1
    with pytest.raises(IdempotencyKeyReused):  # the body still counts
        h.checkout(replace(request(), context=moved, cart_id="crt_9"))


def test_the_schema_example_and_older_payloads_decode() -> None:
    payload = dict(EXAMPLES["checkout.started"])
    decoded = msgspec.convert(payload, CheckoutStarted)
    assert decoded.ip_region == "eu" and decoded.instrument_id
    older = {
        k: v
        for k, v in payload.items()
        if k not in ("device_id", "client_ip", "ip_region", "instrument_id")
    }
    decoded = msgspec.convert(older, CheckoutStarted)
    assert decoded.device_id is None and decoded.client_ip is None
    assert decoded.ip_region is None and decoded.instrument_id is None
