"""The card vault: the sandbox gateway's cards sealed (AES-GCM envelopes), no plain numbers.

``vault_keys`` holds the vault's named secrets (the fingerprint key), wrapped by the KEK.
``sandbox_gateway_vault`` loses ``number``, ``exp_month`` and ``exp_year``: they move into
``sealed`` (AES-GCM under a per-card data key), ``data_key`` (that key wrapped by the KEK
version ``kek_id``); ``fingerprint`` recognises a card without its number.

Existing plain rows are sealed here with the KEK the settings name (SOUK_VAULT_*, as for
`souk serve`), or the key manager handed in as ``config.attributes["vault_kms"]``; the table is
then rewritten so the dropped numbers do not linger in its pages. A database
that held plain numbers may still have them in old WAL segments and backups: rotate those
out. Downgrade works only on an empty vault: it never writes numbers back in the clear.

Revision ID: 0010_vault
Revises: 0009_ledger
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

from alembic import op
from sqlalchemy import Connection, text

revision = "0010_vault"
down_revision = "0009_ledger"
branch_labels = None
depends_on = None

BATCH = 500


def _card_vault(connection: Connection) -> Any:
    """The vault to seal existing rows with: the caller's key manager, else the settings'."""
    from transactional.payments.vault.cards import CardVault
    from transactional.payments.vault.repository import SqlVaultSecrets

    config = op.get_context().config
    kms = config.attributes.get("vault_kms") if config is not None else None
    if kms is None:
        from souk.settings import get_settings
        from souk.vault_wiring import build_key_management

        kms = build_key_management(get_settings())
    # The fingerprint key goes into this transaction's vault_keys.
    return CardVault(kms, SqlVaultSecrets(connection))


def _seal_plain_rows(connection: Connection) -> int:
    from transactional.payments.vault.cards import CardSecret

    sealed = 0
    cards = None
    while True:
        rows = connection.execute(
            text(
                "SELECT token, number, exp_month, exp_year FROM sandbox_gateway_vault "
                "WHERE sealed IS NULL ORDER BY token LIMIT :n"
            ),
            {"n": BATCH},
        ).all()
        if not rows:
            return sealed
        cards = cards or _card_vault(connection)
        for row in rows:
            card = cards.seal(row.token, CardSecret(row.number, row.exp_month, row.exp_year))
            connection.execute(
                text(
                    "UPDATE sandbox_gateway_vault SET sealed = :sealed, data_key = :data_key, "
                    "kek_id = :kek_id, fingerprint = :fingerprint, number = '' "
                    "WHERE token = :token"
                ),
                {
                    "token": row.token,
                    "sealed": card.envelope.ciphertext,
                    "data_key": card.envelope.data_key.blob,
                    "kek_id": card.envelope.data_key.kek_id,
                    "fingerprint": card.fingerprint,
                },
            )
        sealed += len(rows)


def upgrade() -> None:
    """Create ``vault_keys``, seal the sandbox's cards and drop their plain columns."""
    op.execute(
        """
        CREATE TABLE vault_keys (
            name        TEXT PRIMARY KEY,
            kek_id      TEXT        NOT NULL,
            wrapped_key BYTEA       NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        ALTER TABLE sandbox_gateway_vault
            ADD COLUMN fingerprint TEXT,
            ADD COLUMN sealed      BYTEA,
            ADD COLUMN data_key    BYTEA,
            ADD COLUMN kek_id      TEXT;
        """
    )
    sealed = _seal_plain_rows(op.get_bind())
    op.execute(
        """
        ALTER TABLE sandbox_gateway_vault
            DROP COLUMN number,
            DROP COLUMN exp_month,
            DROP COLUMN exp_year,
            ALTER COLUMN fingerprint SET NOT NULL,
            ALTER COLUMN sealed SET NOT NULL,
            ALTER COLUMN data_key SET NOT NULL,
            ALTER COLUMN kek_id SET NOT NULL;
        CREATE INDEX sandbox_gateway_vault_fingerprint ON sandbox_gateway_vault (fingerprint);
        """
    )
    if sealed:
        # Dropped columns (and the rows' old versions) stay in the table's pages until it is
        # rewritten: a column type change through an expression rewrites it into a new file
        # of live rows only, in this transaction (VACUUM FULL cannot run inside one).
        op.execute(
            "ALTER TABLE sandbox_gateway_vault ALTER COLUMN holder TYPE TEXT USING holder || ''"
        )


def downgrade() -> None:
    """Back to plain columns, only for an empty vault: sealed cards are never un-encrypted."""
    cards = op.get_bind().execute(text("SELECT count(*) FROM sandbox_gateway_vault")).scalar_one()
    if cards:
        raise RuntimeError(
            f"0010_vault cannot be downgraded with {cards} sealed cards: it would store card "
            "numbers in the clear again"
        )
    op.execute(
        """
        DROP INDEX sandbox_gateway_vault_fingerprint;
        ALTER TABLE sandbox_gateway_vault
            DROP COLUMN fingerprint, DROP COLUMN sealed, DROP COLUMN data_key, DROP COLUMN kek_id,
            ADD COLUMN number    TEXT     NOT NULL,
            ADD COLUMN exp_month SMALLINT NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
            ADD COLUMN exp_year  SMALLINT NOT NULL;
        DROP TABLE vault_keys;
        """
    )
