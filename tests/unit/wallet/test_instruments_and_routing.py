"""Instrument tokens (wallet, split, EMI) and the gateway router's choice of adapter."""

from __future__ import annotations

from typing import Any

import pytest

from transactional.payments.instruments import (
    InvalidInstrument,
    emi_token,
    funding_parts,
    instrument_method,
    parse_instrument,
    split_gateway,
    split_token,
    wallet_part,
    wallet_token,
)
from transactional.payments.model import GatewayAuthorization, GatewayTransaction
from transactional.payments.routing import PaymentRouter, parse_routes


def test_tokens_round_trip() -> None:
    assert parse_instrument("tok_1").kind == "card"
    wallet = parse_instrument(wallet_token("cus_1"))
    assert (wallet.kind, wallet.customer_id, wallet.method) == ("wallet", "cus_1", "wallet")
    split = parse_instrument(split_token(500, "tok_1"))
    assert (split.kind, split.wallet_minor, split.card_token, split.method) == (
        "split",
        500,
        "tok_1",
        "wallet",
    )
    emi = parse_instrument(emi_token(6, "HDFC", "tok_1"))
    assert (emi.kind, emi.emi_months, emi.emi_bank, emi.card_token, emi.method) == (
        "emi",
        6,
        "hdfc",
        "tok_1",
        "emi",
    )
    assert instrument_method("upi:ada@okbank") == "card"  # not ours: left to its adapter
    assert [split_gateway(t, "sandbox") for t in ("tok_1", "wallet:cus_1", "split:5:tok_1")] == [
        "sandbox",
        "wallet",
        "split",
    ]


def test_malformed_instruments_are_refused() -> None:
    with pytest.raises(InvalidInstrument):
        split_token(0, "tok_1")
    with pytest.raises(InvalidInstrument):
        emi_token(4, "hdfc", "tok_1")
    with pytest.raises(InvalidInstrument):
        parse_instrument("split:abc:tok_1")
    with pytest.raises(InvalidInstrument):
        wallet_token("cus:1")


def test_the_wallet_part_and_the_ledger_funding_of_a_split() -> None:
    token = split_token(700, "tok_1")
    assert wallet_part(token, 1000) == 700 and wallet_part(token, 500) == 500
    assert wallet_part(wallet_token("cus_1"), 900) == 900 and wallet_part("tok_1", 900) == 0
    assert funding_parts(token, 1000, "cus_1", "sandbox") == [
        ("wallet_liability:cus_1", 700),
        ("processor_clearing:sandbox", 300),
    ]


class Recorder:
    """An adapter that records what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []

    def tokenize(self, card: Any, owner: str | None = None) -> str:
        return "tok_new"

    def owner_of(self, token: str) -> str | None:
        self.calls.append(("owner_of", token))
        return "cus_1"

    def authorize(
        self, token: str, amount_minor: int, currency: str, key: str, *, owner: Any = None
    ) -> GatewayAuthorization:
        self.calls.append(("authorize", token))
        return GatewayAuthorization(
            f"ref_{self.name}", "authorized", amount_minor, currency, "v", "1"
        )

    def capture(self, reference: str, amount_minor: Any, key: str) -> GatewayTransaction:
        self.calls.append(("capture", reference))
        return GatewayTransaction("tx", reference, "capture", 1, "EUR")

    def void(self, reference: str, key: str) -> GatewayTransaction:
        self.calls.append(("void", reference))
        return GatewayTransaction("tx", reference, "void", 1, "EUR")

    def refund(self, reference: str, amount_minor: int, key: str) -> GatewayTransaction:
        self.calls.append(("refund", reference))
        return GatewayTransaction("tx", reference, "refund", amount_minor, "EUR")

    def lookup(self, key: str) -> Any:
        return None


def router() -> tuple[PaymentRouter, dict[str, Recorder]]:
    adapters = {name: Recorder(name) for name in ("sandbox", "razorpay", "wallet", "split")}
    routes = parse_routes("eu.card=sandbox,in.card=razorpay,in.emi=razorpay,*.wallet=wallet")
    return PaymentRouter(adapters, routes, default="sandbox"), adapters


def test_cards_are_routed_by_the_region_of_their_currency() -> None:
    routing, adapters = router()
    eu = routing.authorize("tok_1", 100, "EUR", "k1", owner="cus_1")
    inr = routing.authorize("tok_2", 100, "INR", "k2", owner="cus_1")
    usd = routing.authorize("tok_3", 100, "USD", "k3", owner="cus_1")  # no route: the default
    assert eu.reference == "ref_sandbox" and usd.reference == "ref_sandbox"
    assert inr.reference == "@razorpay:ref_razorpay"  # tagged: later calls find their adapter
    assert adapters["razorpay"].calls == [("authorize", "tok_2")]
    routing.capture(inr.reference, None, "k2:capture")
    routing.refund(eu.reference, 10, "k1:refund")
    assert adapters["razorpay"].calls[-1] == ("capture", "ref_razorpay")
    assert adapters["sandbox"].calls[-1] == ("refund", "ref_sandbox")


def test_wallet_split_and_emi_instruments_go_to_their_adapters() -> None:
    routing, adapters = router()
    routing.authorize(wallet_token("cus_1"), 100, "EUR", "k1", owner="cus_1")
    routing.authorize(split_token(50, "tok_1"), 100, "EUR", "k2", owner="cus_1")
    routing.authorize(emi_token(6, "hdfc", "tok_9"), 100, "INR", "k3", owner="cus_1")
    assert adapters["wallet"].calls == [("authorize", "wallet:cus_1")]
    assert adapters["split"].calls == [("authorize", "split:50:tok_1")]
    assert adapters["razorpay"].calls == [("authorize", "tok_9")]  # the card inside the EMI
    routing.void("wsp_123", "k1:void")
    routing.void("split:wsp_1:ch_1", "k2:void")
    assert adapters["wallet"].calls[-1] == ("void", "wsp_123")
    assert adapters["split"].calls[-1] == ("void", "split:wsp_1:ch_1")
    assert routing.name_for("wallet") == "wallet" and routing.name_for("card", "in") == "razorpay"


def test_routes_must_name_known_adapters() -> None:
    with pytest.raises(ValueError):
        parse_routes("eu-card=sandbox")
    adapters = {"sandbox": Recorder("sandbox")}
    with pytest.raises(ValueError):
        PaymentRouter(adapters, parse_routes("eu.card=stripe"), default="sandbox")
