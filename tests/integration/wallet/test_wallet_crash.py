"""Crash safety of the wallet steps: `souk serve` killed right after a wallet debit (alone or as
the first leg of a split) leaves no money lost. A clean server recovers the checkout: the order
is paid from the debit (once), or, when the split's card then declines, the wallet gets the
money back and the order is cancelled. Never both lost, never taken twice."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, free_port, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    DECLINED,
    checkout_ids_of,
    filled_cart,
    order_of,
    saga_of,
    stock_of,
    stock_sku,
)
from tests.integration.purchase.test_checkout_crash import Scenario, Server, post, settled
from tests.integration.wallet.helpers import CARD, balance_of, entries_of, paying, top_up
from transactional.shared.failpoints import CRASH_EXIT_CODE

STARTUP_S = 180  # a shared 2-core machine can take long to import and wire everything
TOP_UP = 20_000
WALLET_PART = 1_000


@dataclass
class WalletCase:
    name: str
    failpoint: str
    method: dict[str, Any]
    rolled_forward: bool


CASES = (
    WalletCase("wallet-debited", "wallet.after_debit", {"type": "wallet"}, True),
    WalletCase("wallet-authorized", "checkout.after_authorize", {"type": "wallet"}, True),
    WalletCase(
        "split-wallet-leg",
        "wallet.split_after_wallet_leg",
        {"type": "card", "card": CARD, "wallet_amount_minor": WALLET_PART},
        True,
    ),
    WalletCase(
        "split-then-declined",
        "wallet.split_after_wallet_leg",
        {"type": "card", "card": {**CARD, "number": DECLINED}, "wallet_amount_minor": WALLET_PART},
        False,
    ),
)


@contextlib.contextmanager
def souk_serve(
    env: Mapping[str, str], home: Path, failpoint: str | None = None
) -> Iterator[Server]:
    """`souk serve` (no relay) with ``failpoint`` armed, once it answers; stopped on exit."""
    port = free_port()
    log = home / f"serve-{port}.log"
    souk = Path(sys.executable).with_name("souk")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(souk), "serve", "--port", str(port), "--no-relay"],
            env={**env, "SOUK_FAILPOINTS": failpoint or ""},
            cwd=home,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, f"souk serve exited early:\n{server.output()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"souk serve did not start:\n{server.output()}"
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_server_killed_after_a_wallet_debit_never_loses_the_money(
    client: Any, engine: Engine, services: Services, endpoints: Endpoints, tmp_path: Path
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    scenarios: list[tuple[WalletCase, Scenario]] = []
    for case in CASES:
        sku = stock_sku(client, seller, 3, price_minor=3000)
        shopper = register(client)
        assert top_up(client, shopper, TOP_UP).status_code == 201
        body = paying(filled_cart(client, shopper, {sku: 1}), case.method)
        scenarios.append((case, Scenario(case.failpoint, sku, shopper, body, str(uuid.uuid4()))))

    env = {
        **os.environ,
        "SOUK_DATABASE_URL": endpoints.database_url,
        "SOUK_REDIS_URL": endpoints.redis_url,
        "SOUK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "SOUK_HOME": str(tmp_path),
        "SOUK_JWT_SECRET": services.settings.jwt_secret,
        "SOUK_SAGA_RECOVERY_AFTER_S": "1",
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
        "SOUK_FRAUD_SCREEN": "false",
        # The card vault's key, as the in-process services use it (SOUK_HOME differs).
        "SOUK_VAULT_KEY_FILE": str(services.settings.state_dir / "vault" / "kek.json"),
    }
    for case, scenario in scenarios:
        with souk_serve(env, tmp_path, case.failpoint) as server:
            try:
                response = post(server.url, scenario)
            except httpx.TransportError:
                pass  # died mid-request, as it should
            else:
                raise AssertionError(
                    f"{case.name}: answered {response.status_code} {response.text}\n"
                    f"{server.output()}"
                )
            assert server.process.wait(timeout=60) == CRASH_EXIT_CODE
            assert f"failpoint {case.failpoint}" in server.output()
        customer_id = scenario.shopper["customer_id"]
        (checkout_id,) = checkout_ids_of(engine, customer_id)
        assert saga_of(engine, checkout_id)["status"] == "pending", case.name
        debited = WALLET_PART if case.method["type"] == "card" else None
        left = balance_of(engine, customer_id)
        assert left < TOP_UP and (debited is None or left == TOP_UP - debited), case.name

    with souk_serve(env, tmp_path) as server:
        answers = {
            case.name: settled(server.url, scenario, timeout_s=120) for case, scenario in scenarios
        }

    for case, scenario in scenarios:
        customer_id = scenario.shopper["customer_id"]
        answer = answers[case.name]
        (checkout_id,) = checkout_ids_of(engine, customer_id)
        assert answer.json()["checkout_id"] == checkout_id, case.name
        order = order_of(engine, checkout_id)
        kinds = [kind for kind, _, _ in entries_of(engine, customer_id)]
        if case.rolled_forward:
            assert answer.status_code == 201, (case.name, answer.text)
            total = answer.json()["totals"]["grand_total_minor"]
            assert order is not None and order["status"] == "paid", case.name
            assert order["paid_minor"] == total
            wallet_paid = total if case.method["type"] == "wallet" else WALLET_PART
            assert balance_of(engine, customer_id) == TOP_UP - wallet_paid, case.name
            assert kinds == ["topup", "debit"], case.name  # debited once, never twice
            assert stock_of(engine, scenario.sku) == (2, 0)
        else:
            assert answer.status_code == 402, (case.name, answer.text)
            assert answer.json()["decline_code"] == "card_declined"
            assert order is not None and order["status"] == "cancelled"
            assert balance_of(engine, customer_id) == TOP_UP, case.name  # the money came back
            assert kinds == ["topup", "debit", "release"], case.name
            assert stock_of(engine, scenario.sku) == (3, 0)
