"""PostgreSQL adapter of the seller repository, and the slice's unit of work."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Self

from sqlalchemy import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from transactional.sellers.model import KycTransition, Seller, SellerDocument, SellerExists
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_SELLER_COLUMNS = (
    "seller_id, customer_id, legal_name, display_name, business_type, country, region, "
    "documents, kyc_status, created_at, updated_at"
)
_TRANSITION_COLUMNS = "seller_id, from_status, to_status, at, reviewer_id, reason"


class SqlSellerRepository:
    """Sellers in ``sellers``, their KYC history in ``seller_kyc_transitions``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, seller: Seller) -> None:
        """Insert a new seller with its first transition; SellerExists if the customer has one."""
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    sql(
                        f"INSERT INTO sellers ({_SELLER_COLUMNS}) VALUES (:seller_id, "
                        ":customer_id, :legal_name, :display_name, :business_type, :country, "
                        ":region, CAST(:documents AS jsonb), :kyc_status, :created_at, "
                        ":updated_at)"
                    ),
                    {
                        "seller_id": seller.seller_id,
                        "customer_id": seller.customer_id,
                        "legal_name": seller.legal_name,
                        "display_name": seller.display_name,
                        "business_type": seller.business_type,
                        "country": seller.country,
                        "region": seller.region,
                        "documents": json.dumps(
                            [{"kind": d.kind, "reference": d.reference} for d in seller.documents]
                        ),
                        "kyc_status": seller.kyc_status,
                        "created_at": seller.created_at,
                        "updated_at": seller.updated_at,
                    },
                )
        except IntegrityError:
            raise SellerExists(
                f"customer {seller.customer_id} already has a seller account",
                customer_id=seller.customer_id,
            ) from None
        self._insert_transitions(seller.history)

    def get(self, seller_id: str, *, for_update: bool = False) -> Seller | None:
        """A seller with its KYC history, or None; ``for_update`` locks the row."""
        lock = " FOR UPDATE" if for_update else ""
        return self._one(
            f"SELECT {_SELLER_COLUMNS} FROM sellers WHERE seller_id = :value{lock}", seller_id
        )

    def by_customer(self, customer_id: str) -> Seller | None:
        """The seller account of a customer, or None."""
        return self._one(
            f"SELECT {_SELLER_COLUMNS} FROM sellers WHERE customer_id = :value", customer_id
        )

    def record(self, seller: Seller, transition: KycTransition) -> None:
        """Persist the seller's new KYC status and append the transition."""
        self._connection.execute(
            sql(
                "UPDATE sellers SET kyc_status = :status, updated_at = :at "
                "WHERE seller_id = :seller_id"
            ),
            {"status": seller.kyc_status, "at": seller.updated_at, "seller_id": seller.seller_id},
        )
        self._insert_transitions([transition])

    def by_status(self, status: str, *, offset: int, limit: int) -> tuple[list[Seller], int]:
        """Sellers in a KYC status, oldest application first, and how many there are."""
        rows = (
            self._connection.execute(
                sql(
                    f"SELECT {_SELLER_COLUMNS} FROM sellers WHERE kyc_status = :status "
                    "ORDER BY created_at, seller_id LIMIT :limit OFFSET :offset"
                ),
                {"status": status, "limit": limit, "offset": offset},
            )
            .mappings()
            .all()
        )
        total = self._connection.execute(
            sql("SELECT count(*) FROM sellers WHERE kyc_status = :status"), {"status": status}
        ).scalar_one()
        histories = self._histories([row["seller_id"] for row in rows])
        return [_seller(row, histories[row["seller_id"]]) for row in rows], int(total)

    def _one(self, query: str, value: str) -> Seller | None:
        row = self._connection.execute(sql(query), {"value": value}).mappings().first()
        if row is None:
            return None
        return _seller(row, self._histories([row["seller_id"]])[row["seller_id"]])

    def _histories(self, seller_ids: Sequence[str]) -> dict[str, list[KycTransition]]:
        histories: dict[str, list[KycTransition]] = defaultdict(list)
        if not seller_ids:
            return histories
        rows = self._connection.execute(
            sql(
                f"SELECT {_TRANSITION_COLUMNS} FROM seller_kyc_transitions "
                "WHERE seller_id = ANY(:ids) ORDER BY at, transition_id"
            ),
            {"ids": list(seller_ids)},
        ).mappings()
        for row in rows:
            histories[row["seller_id"]].append(KycTransition(**row))
        return histories

    def _insert_transitions(self, transitions: Sequence[KycTransition]) -> None:
        if not transitions:
            return
        self._connection.execute(
            sql(
                f"INSERT INTO seller_kyc_transitions ({_TRANSITION_COLUMNS}) VALUES "
                "(:seller_id, :from_status, :to_status, :at, :reviewer_id, :reason)"
            ),
            [
                {
                    "seller_id": t.seller_id,
                    "from_status": t.from_status,
                    "to_status": t.to_status,
                    "at": t.at,
                    "reviewer_id": t.reviewer_id,
                    "reason": t.reason,
                }
                for t in transitions
            ],
        )


def _seller(row: RowMapping, history: list[KycTransition]) -> Seller:
    return Seller(
        seller_id=row["seller_id"],
        customer_id=row["customer_id"],
        legal_name=row["legal_name"],
        display_name=row["display_name"],
        business_type=row["business_type"],
        country=row["country"].strip(),
        region=row["region"],
        documents=[SellerDocument(d["kind"], d["reference"]) for d in row["documents"]],
        kyc_status=row["kyc_status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=history,
    )


class SqlSellersUnitOfWork(SqlUnitOfWork):
    """A transaction with ``sellers`` attached."""

    sellers: SqlSellerRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.sellers = SqlSellerRepository(self.connection)
        return self
