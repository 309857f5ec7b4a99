"""The sandbox gateway's vault on the real PostgreSQL: sealed rows, fingerprints, no PAN."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import Engine, text

from souk.settings import Settings
from souk.vault_wiring import build_card_vault
from transactional.payments.model import Card
from transactional.payments.sandbox import SandboxCardGateway
from transactional.payments.sandbox_ledger import SqlSandboxLedger
from transactional.payments.vault.kms import VaultError

NUMBER = "5555555555554444"


def card(number: str = NUMBER, exp_year: int = 2037) -> Card:
    return Card(number=number, exp_month=11, exp_year=exp_year, cvc="987", holder="Ada Lovelace")


@pytest.fixture(scope="module")
def gateway(souk_settings: Settings, engine: Engine) -> SandboxCardGateway:
    return SandboxCardGateway(SqlSandboxLedger(engine, build_card_vault(souk_settings, engine)))


def vault_row(engine: Engine, token: str) -> dict[str, object]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text(
                    "SELECT row_to_json(v)::text AS json, fingerprint, kek_id, last4, brand "
                    "FROM sandbox_gateway_vault v WHERE token = :token"
                ),
                {"token": token},
            )
            .mappings()
            .one()
        )


def test_a_vaulted_card_is_stored_sealed_with_only_last4_brand_fingerprint(
    gateway: SandboxCardGateway, engine: Engine
) -> None:
    token = gateway.tokenize(card(), "cus_" + secrets.token_hex(4))
    row = vault_row(engine, token)
    stored = str(row["json"])
    assert NUMBER not in stored and "2037" not in stored and "987" not in stored
    assert (row["last4"], row["brand"]) == ("4444", "mastercard")
    with engine.connect() as connection:
        columns = set(
            connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'sandbox_gateway_vault'"
                )
            ).scalars()
        )
    assert not columns & {"number", "exp_month", "exp_year", "cvc"}
    assert {"sealed", "data_key", "kek_id", "fingerprint"} <= columns


def test_the_gateway_still_acts_on_the_sealed_number_and_expiry(
    gateway: SandboxCardGateway,
) -> None:
    approved = gateway.tokenize(card())
    declined = gateway.tokenize(card("4000000000009995"))
    key = "key_" + secrets.token_hex(6)
    assert gateway.authorize(approved, 1000, "EUR", key).status == "authorized"
    answer = gateway.authorize(declined, 1000, "EUR", key + "-2")
    assert (answer.status, answer.decline_code) == ("declined", "insufficient_funds")


def test_the_same_card_under_two_tokens_has_one_fingerprint(
    gateway: SandboxCardGateway, engine: Engine
) -> None:
    one = gateway.tokenize(card())
    two = gateway.tokenize(card("5555 5555 5555 4444"))
    other = gateway.tokenize(card("4242424242424242"))
    prints = [vault_row(engine, token)["fingerprint"] for token in (one, two, other)]
    assert prints[0] == prints[1] != prints[2]


def test_a_sealed_card_copied_to_another_token_does_not_open(
    gateway: SandboxCardGateway, engine: Engine
) -> None:
    victim = gateway.tokenize(card("4000000000000002"))
    attacker = gateway.tokenize(card())
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE sandbox_gateway_vault AS a SET sealed = v.sealed, data_key = v.data_key, "
                "kek_id = v.kek_id FROM sandbox_gateway_vault AS v "
                "WHERE a.token = :attacker AND v.token = :victim"
            ),
            {"attacker": attacker, "victim": victim},
        )
    try:
        with pytest.raises(VaultError) as error:
            gateway.authorize(attacker, 1000, "EUR", "key_" + secrets.token_hex(6))
        assert "4000000000000002" not in str(error.value)
    finally:
        # A row that cannot open would stop later key rotations of this database.
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM sandbox_gateway_vault WHERE token = :t"), {"t": attacker}
            )
