"""`souk vault rotate-key` in its own process while cards are tokenised and charged here."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import Engine, text

from souk.services import Services
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from souk.vault_wiring import key_file_path
from transactional.payments.model import Card
from transactional.payments.service import PaymentService
from transactional.payments.vault.cards import CardVault
from transactional.payments.vault.envelope import Envelope
from transactional.payments.vault.kms import WrappedKey
from transactional.payments.vault.local_kms import LocalKeyring
from transactional.payments.vault.repository import SqlVaultSecrets, SqlWrappedKeys

NUMBERS = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]
URL_SETTINGS = ("SOUK_DATABASE_URL", "SOUK_REDIS_URL", "SOUK_KAFKA_BOOTSTRAP")


def souk_vault(
    settings: Settings, endpoints: Endpoints, *args: str
) -> subprocess.CompletedProcess[str]:
    """`souk vault …` as an operator runs it: another process, same home and database."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in URL_SETTINGS and not k.startswith("SOUK_VAULT")
    }
    environment.update(SOUK_HOME=str(settings.state_dir), SOUK_DATABASE_URL=endpoints.database_url)
    return subprocess.run(
        [sys.executable, "-m", "souk", "vault", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=settings.state_dir,
    )


def card(index: int) -> Card:
    number = NUMBERS[index % len(NUMBERS)]
    cvc = "1234" if number.startswith("37") else "123"
    return Card(number=number, exp_month=10, exp_year=2039, cvc=cvc, holder="Ada Lovelace")


def open_every_card(settings: Settings, engine: Engine) -> dict[str, str]:
    """Each vaulted card's number, opened by a fresh process's vault: kek_id per token."""
    vault = CardVault(LocalKeyring.from_file(key_file_path(settings)), SqlVaultSecrets(engine))
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT token, sealed, data_key, kek_id, last4 FROM sandbox_gateway_vault")
        ).all()
    versions = {}
    for row in rows:
        envelope = Envelope(bytes(row.sealed), WrappedKey(row.kek_id, bytes(row.data_key)))
        assert vault.open(row.token, envelope).number.endswith(row.last4.strip())
        versions[row.token] = row.kek_id
    return versions


def test_rotation_while_tokenising_and_charging_keeps_every_card_usable(
    services: Services, souk_settings: Settings, endpoints: Endpoints, engine: Engine
) -> None:
    payments: PaymentService = services.provided["payments"]
    vaulted = []
    for index in range(40):  # enough for several batches of 7
        customer = f"cus_{secrets.token_hex(4)}"
        vaulted.append((payments.tokenize(card(index), customer), customer))
    before = LocalKeyring.from_file(key_file_path(souk_settings)).current_key_id()
    stop = threading.Event()
    done: list[str] = []
    errors: list[BaseException] = []

    def shopper(worker: int) -> None:
        index = worker
        while not stop.is_set():
            try:
                customer = f"cus_{secrets.token_hex(4)}"
                token = payments.tokenize(card(index), customer)
                payment = payments.authorize(
                    payment_id=f"pay_{secrets.token_hex(8)}",
                    order_id=f"ord_eu_{secrets.token_hex(16)}",
                    customer_id=customer,
                    amount_minor=1500,
                    currency="EUR",
                    instrument_token=token,
                    idempotency_key=f"key_{secrets.token_hex(8)}",
                )
                assert payment.status == "authorized", payment.status
                payments.capture(payment.payment_id)
                done.append(token)
            except BaseException as error:  # reported below
                errors.append(error)
                return
            index += 2

    workers = [threading.Thread(target=shopper, args=(n,)) for n in range(2)]
    for thread in workers:
        thread.start()
    try:
        started_with = len(done)
        rotated = souk_vault(souk_settings, endpoints, "rotate-key", "--batch-size", "7")
        during = len(done) - started_with
    finally:
        stop.set()
        for thread in workers:
            thread.join()

    assert rotated.returncode == 0, rotated.stderr + rotated.stdout
    assert "re-wrapped" in rotated.stdout
    assert not errors, errors
    assert during > 0, "no card was tokenised and charged while the rotation ran"
    after = LocalKeyring.from_file(key_file_path(souk_settings)).current_key_id()
    assert after != before
    versions = open_every_card(souk_settings, engine)
    assert set(done) <= set(versions)
    # Stragglers wrapped by a writer that had just read the old version: a re-wrap-only
    # pass (nothing concurrent now) moves everything to the new version.
    again = souk_vault(souk_settings, endpoints, "rotate-key", "--no-new-key")
    assert again.returncode == 0, again.stderr + again.stdout
    assert set(SqlWrappedKeys(engine).versions()) == {after}
    assert set(open_every_card(souk_settings, engine).values()) == {after}
    # And the gateway still charges a card vaulted before the rotation.
    token, customer = vaulted[0]
    status = souk_vault(souk_settings, endpoints, "status")
    assert status.returncode == 0 and after in status.stdout, status.stderr + status.stdout
    payment = payments.authorize(
        payment_id=f"pay_{secrets.token_hex(8)}",
        order_id=f"ord_eu_{secrets.token_hex(16)}",
        customer_id=customer,
        amount_minor=900,
        currency="EUR",
        instrument_token=token,
        idempotency_key=f"key_{secrets.token_hex(8)}",
    )
    assert payment.status == "authorized"


def test_the_key_file_is_owner_only(souk_settings: Settings, services: Services) -> None:
    path: Path = key_file_path(souk_settings)
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
