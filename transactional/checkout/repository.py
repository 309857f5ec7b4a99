"""PostgreSQL adapters of the saga and idempotency-key repositories; the slice's unit of work."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection

from transactional.checkout.model import (
    Allocation,
    Checkout,
    Failure,
    FraudVerdict,
    IdempotencyRecord,
    Plan,
    PlanLine,
    ShippingAddress,
    Stage,
    StepRecord,
    StoredResponse,
    Totals,
)
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_COLUMNS = (
    "checkout_id, customer_id, cart_id, idempotency_key, region, status, stage, plan, "
    "instrument_token, card_last4, allocations, order_id, totals, payment_id, payment_status, "
    "failure, history, lease_owner, lease_until, created_at, updated_at, fraud"
)
_READ = _COLUMNS + ", recovery_attempts"
_MUTABLE = (
    "status, stage, plan, instrument_token, card_last4, allocations, order_id, totals, "
    "payment_id, payment_status, failure, history, lease_until, updated_at"
)
_JSON = ("plan", "allocations", "totals", "failure", "history", "fraud")


def _placeholders(columns: str) -> str:
    names = [name.strip() for name in columns.split(",")]
    return ", ".join(f"CAST(:{n} AS jsonb)" if n in _JSON else f":{n}" for n in names)


# Statements shared with the pipelined adapter (``pipelined.py``).
INSERT_CHECKOUT = f"INSERT INTO checkouts ({_COLUMNS}) VALUES ({_placeholders(_COLUMNS)})"
# Fenced: only the lease holder writes a pending saga.
SAVE_CHECKOUT = (
    "UPDATE checkouts SET "
    + ", ".join(
        f"{name} = {placeholder}"
        for name, placeholder in zip(
            [n.strip() for n in _MUTABLE.split(",")],
            _placeholders(_MUTABLE).split(", "),
            strict=True,
        )
    )
    + " WHERE checkout_id = :checkout_id AND lease_owner = :owner AND status = 'pending'"
)
RENEW_LEASE = (
    "UPDATE checkouts SET lease_until = :until WHERE checkout_id = :id "
    "AND lease_owner = :owner AND status = 'pending'"
)
CLAIM_KEY = (
    "INSERT INTO checkout_idempotency_keys (customer_id, idempotency_key, "
    "fingerprint, checkout_id, created_at, expires_at) VALUES (:customer_id, :key, "
    ":fingerprint, :checkout_id, :created_at, :expires_at) "
    "ON CONFLICT (customer_id, idempotency_key) DO UPDATE SET "
    "fingerprint = EXCLUDED.fingerprint, checkout_id = EXCLUDED.checkout_id, "
    "response_status = NULL, response_body = NULL, "
    "created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at "
    "WHERE checkout_idempotency_keys.expires_at <= EXCLUDED.created_at "
    "RETURNING checkout_id"
)
GET_KEY = (
    "SELECT customer_id, idempotency_key, fingerprint, checkout_id, created_at, "
    "expires_at, response_status, response_body FROM checkout_idempotency_keys "
    "WHERE customer_id = :customer_id AND idempotency_key = :key"
)
FINISH_KEY = (
    "UPDATE checkout_idempotency_keys SET response_status = :status, "
    "response_body = CAST(:body AS jsonb) WHERE customer_id = :customer_id "
    "AND idempotency_key = :key AND checkout_id = :checkout_id"
)
# The cart is claimed only if nobody holds it and no checkout bought it since the caller read
# it (the order the caller saw last, from the cart's own marker): a checkout that read the
# lines before another bought them cannot buy them again.
CLAIM_CART = (
    "INSERT INTO checkout_cart_claims (cart_id, checkout_id, last_order_id, claimed_at) "
    "VALUES (:cart_id, :checkout_id, :seen, :at) ON CONFLICT (cart_id) DO UPDATE SET "
    "checkout_id = EXCLUDED.checkout_id, claimed_at = EXCLUDED.claimed_at "
    "WHERE checkout_cart_claims.checkout_id IS NULL "
    "AND checkout_cart_claims.last_order_id IS NOT DISTINCT FROM EXCLUDED.last_order_id "
    "RETURNING checkout_id"
)
CART_CLAIM = "SELECT checkout_id, last_order_id FROM checkout_cart_claims WHERE cart_id = :cart_id"
# Freed: after a failure (the lines are still there), or after the lines were bought.
RELEASE_CART = (
    "UPDATE checkout_cart_claims SET checkout_id = NULL, "
    "last_order_id = coalesce(:bought, last_order_id) "
    "WHERE cart_id = :cart_id AND checkout_id = :checkout_id"
)


def key_row(record: IdempotencyRecord) -> dict[str, Any]:
    """The parameters of CLAIM_KEY."""
    return {
        "customer_id": record.customer_id,
        "key": record.key,
        "fingerprint": record.fingerprint,
        "checkout_id": record.checkout_id,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }


def finish_row(
    customer_id: str, key: str, checkout_id: str, response: StoredResponse
) -> dict[str, Any]:
    """The parameters of FINISH_KEY."""
    return {
        "customer_id": customer_id,
        "key": key,
        "checkout_id": checkout_id,
        "status": response.status,
        "body": json.dumps(response.body),
    }


def key_record(row: Mapping[str, Any]) -> IdempotencyRecord:
    """An idempotency record from a GET_KEY row."""
    response = (
        None
        if row["response_status"] is None
        else StoredResponse(row["response_status"], row["response_body"])
    )
    return IdempotencyRecord(
        customer_id=row["customer_id"],
        key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        checkout_id=row["checkout_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        response=response,
    )


class SqlCheckoutRepository:
    """Sagas in the ``checkouts`` table; writes are fenced by ``lease_owner``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, checkout: Checkout) -> None:
        """Insert a new saga."""
        self._connection.execute(sql(INSERT_CHECKOUT), checkout_row(checkout))

    def get(self, checkout_id: str) -> Checkout | None:
        """A saga by id, or None."""
        row = (
            self._connection.execute(
                sql(f"SELECT {_READ} FROM checkouts WHERE checkout_id = :id"),
                {"id": checkout_id},
            )
            .mappings()
            .first()
        )
        return None if row is None else _checkout(dict(row))

    def save(self, checkout: Checkout, owner: str) -> bool:
        """Write the saga if ``owner`` still holds its lease; False if someone took it over."""
        result = self._connection.execute(
            sql(SAVE_CHECKOUT), {**checkout_row(checkout), "owner": owner}
        )
        return bool(result.rowcount)

    def renew(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Extend ``owner``'s lease of a pending saga; False if it is no longer theirs."""
        result = self._connection.execute(
            sql(RENEW_LEASE), {"id": checkout_id, "owner": owner, "until": lease_until}
        )
        return bool(result.rowcount)

    def claim_stale(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[str]:
        """Take the lease of pending sagas whose lease ran out (skipping locked ones); each
        claim counts one more recovery attempt."""
        rows = self._connection.execute(
            sql(
                "WITH stale AS (SELECT checkout_id FROM checkouts "
                "WHERE status = 'pending' AND lease_until < :now "
                "ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED) "
                "UPDATE checkouts AS c SET lease_owner = :owner, lease_until = :until, "
                "recovery_attempts = c.recovery_attempts + 1 "
                "FROM stale WHERE c.checkout_id = stale.checkout_id RETURNING c.checkout_id"
            ),
            {"now": now, "owner": owner, "until": lease_until, "limit": limit},
        )
        return [str(checkout_id) for (checkout_id,) in rows]

    def claim_held(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Take the lease of a saga held for fraud review (a reviewer's decision drives it);
        False if it is not held (any more)."""
        result = self._connection.execute(
            sql(
                "UPDATE checkouts SET lease_owner = :owner, lease_until = :until "
                "WHERE checkout_id = :id AND status = 'pending' AND stage = 'held'"
            ),
            {"id": checkout_id, "owner": owner, "until": lease_until},
        )
        return bool(result.rowcount)

    def claim_action(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Take the lease of a saga waiting on the payer (their answer drives it); False if
        it is not waiting (any more)."""
        result = self._connection.execute(
            sql(
                "UPDATE checkouts SET lease_owner = :owner, lease_until = :until "
                "WHERE checkout_id = :id AND status = 'pending' AND stage = 'action_required'"
            ),
            {"id": checkout_id, "owner": owner, "until": lease_until},
        )
        return bool(result.rowcount)

    def hand_over(self, checkout_id: str, owner: str, at: datetime) -> None:
        """End ``owner``'s lease of a pending saga at ``at`` (recovery may take it then)."""
        self._connection.execute(
            sql(
                "UPDATE checkouts SET lease_until = :at WHERE checkout_id = :id "
                "AND lease_owner = :owner AND status = 'pending'"
            ),
            {"id": checkout_id, "owner": owner, "at": at},
        )


class SqlIdempotencyKeys:
    """Idempotency keys in the ``checkout_idempotency_keys`` table, unique per customer."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Insert the key (or take over an expired one): None if claimed, else the live record."""
        claimed = self._connection.execute(sql(CLAIM_KEY), key_row(record)).first()
        if claimed is not None:
            return None
        existing = self.get(record.customer_id, record.key)
        if existing is None:  # the conflicting row was live: only expired keys are purged
            raise RuntimeError(f"idempotency key {record.key!r} vanished while claimed")
        return existing

    def get(self, customer_id: str, key: str) -> IdempotencyRecord | None:
        """A customer's key, or None."""
        row = (
            self._connection.execute(sql(GET_KEY), {"customer_id": customer_id, "key": key})
            .mappings()
            .first()
        )
        return None if row is None else key_record(dict(row))

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        """Store the final response of the key's request."""
        self._connection.execute(
            sql(FINISH_KEY), finish_row(customer_id, key, checkout_id, response)
        )

    def purge_expired(self, now: datetime) -> int:
        """Delete finished keys past their expiry; how many went."""
        result = self._connection.execute(
            sql(
                "DELETE FROM checkout_idempotency_keys WHERE expires_at <= :now "
                "AND response_status IS NOT NULL"
            ),
            {"now": now},
        )
        return int(result.rowcount)


class SqlCartClaims:
    """Which checkout holds a cart, in the ``checkout_cart_claims`` table."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def release(self, cart_id: str, checkout_id: str) -> None:
        """Free the cart if ``checkout_id`` holds it."""
        self._connection.execute(
            sql(RELEASE_CART), {"cart_id": cart_id, "checkout_id": checkout_id, "bought": None}
        )

    def settled(self, older_than: datetime, limit: int) -> list[tuple[str, str, str]]:
        """(cart, checkout, saga status) of claims older than ``older_than`` whose saga is
        no longer pending (or gone): left behind by a crash after the saga ended."""
        rows = self._connection.execute(
            sql(
                "SELECT k.cart_id, k.checkout_id, coalesce(c.status, 'failed') "
                "FROM checkout_cart_claims AS k LEFT JOIN checkouts AS c USING (checkout_id) "
                "WHERE k.checkout_id IS NOT NULL AND k.claimed_at < :before "
                "AND coalesce(c.status, 'failed') <> 'pending' "
                "ORDER BY k.claimed_at LIMIT :limit"
            ),
            {"before": older_than, "limit": limit},
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]


class SqlCheckoutUnitOfWork(SqlUnitOfWork):
    """A transaction with ``checkouts``, ``idempotency`` and ``claims`` attached."""

    checkouts: SqlCheckoutRepository
    idempotency: SqlIdempotencyKeys
    claims: SqlCartClaims

    def __enter__(self) -> Self:
        super().__enter__()
        self.checkouts = SqlCheckoutRepository(self.connection)
        self.idempotency = SqlIdempotencyKeys(self.connection)
        self.claims = SqlCartClaims(self.connection)
        return self


# -- row mapping ------------------------------------------------------------------------------


def checkout_row(checkout: Checkout) -> dict[str, Any]:
    """The checkouts row of a saga (JSON columns encoded)."""
    plan = checkout.plan
    return {
        "checkout_id": checkout.checkout_id,
        "customer_id": checkout.customer_id,
        "cart_id": checkout.cart_id,
        "idempotency_key": checkout.idempotency_key,
        "region": checkout.region,
        "status": checkout.status,
        "stage": checkout.stage.value,
        "plan": None if plan is None else json.dumps(_plan_json(plan)),
        "instrument_token": checkout.instrument_token,
        "card_last4": checkout.card_last4,
        "allocations": json.dumps([_allocation_json(a) for a in checkout.allocations]),
        "order_id": checkout.order_id,
        "totals": None if checkout.totals is None else json.dumps(vars(checkout.totals)),
        "payment_id": checkout.payment_id,
        "payment_status": checkout.payment_status,
        "failure": None if checkout.failure is None else json.dumps(vars(checkout.failure)),
        "history": json.dumps(
            [
                {"step": r.step, "outcome": r.outcome, "at": r.at.isoformat()}
                for r in checkout.history
            ]
        ),
        "lease_owner": checkout.lease_owner,
        "lease_until": checkout.lease_until,
        "created_at": checkout.created_at,
        "updated_at": checkout.updated_at,
        "fraud": None if checkout.fraud is None else json.dumps(_fraud_json(checkout.fraud)),
    }


def _fraud_json(verdict: FraudVerdict) -> dict[str, Any]:
    return {
        "decision": verdict.decision,
        "score": verdict.score,
        "rules": list(verdict.rules),
        "reasons": list(verdict.reasons),
        "model_version": verdict.model_version,
    }


def _fraud(value: Mapping[str, Any] | None) -> FraudVerdict | None:
    if value is None:
        return None
    return FraudVerdict(
        decision=value["decision"],
        score=float(value["score"]),
        rules=tuple(value.get("rules") or ()),
        reasons=tuple(value.get("reasons") or ()),
        model_version=value.get("model_version"),
    )


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "currency": plan.currency,
        "lines": [vars(line) for line in plan.lines],
        "subtotal_minor": plan.subtotal_minor,
        "ship_region": plan.ship_region,
        "shipping": vars(plan.shipping),
    }


def _allocation_json(allocation: Allocation) -> dict[str, Any]:
    return vars(allocation).copy()


def _checkout(row: dict[str, Any]) -> Checkout:
    plan = row["plan"]
    return Checkout(
        checkout_id=row["checkout_id"],
        customer_id=row["customer_id"],
        cart_id=row["cart_id"],
        idempotency_key=row["idempotency_key"],
        region=row["region"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stage=Stage(row["stage"]),
        plan=None
        if plan is None
        else Plan(
            currency=plan["currency"],
            lines=tuple(PlanLine(**line) for line in plan["lines"]),
            subtotal_minor=plan["subtotal_minor"],
            ship_region=plan["ship_region"],
            shipping=ShippingAddress(**plan["shipping"]),
        ),
        instrument_token=row["instrument_token"],
        card_last4=row["card_last4"],
        allocations=tuple(Allocation(**a) for a in row["allocations"] or ()),
        order_id=row["order_id"],
        totals=None if row["totals"] is None else Totals(**row["totals"]),
        payment_id=row["payment_id"],
        payment_status=row["payment_status"],
        failure=None if row["failure"] is None else Failure(**row["failure"]),
        history=[
            StepRecord(r["step"], r["outcome"], datetime.fromisoformat(r["at"]))
            for r in row["history"] or ()
        ],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        attempts=row.get("recovery_attempts", 0),
        fraud=_fraud(row.get("fraud")),
    )
