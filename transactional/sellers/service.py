"""Seller use cases: apply to sell, KYC review by an admin, and the "may they sell" gate."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from schemas.ids import new_id
from schemas.registry import REGISTRY
from schemas.sellers import KycStatus as EventKycStatus
from schemas.sellers import SellerApplied, SellerKycChanged
from transactional.sellers.model import (
    BUSINESS_TYPES,
    KYC_STATUSES,
    KycStatus,
    KycTransition,
    NotASeller,
    Seller,
    SellerDocument,
    SellerNotApproved,
    SellerRepository,
    check_documents,
    check_location,
    check_name,
)
from transactional.shared.errors import InvalidRequest, NotFound
from transactional.shared.unit_of_work import UnitOfWork

# The published contract names a passed KYC "verified" (schemas/sellers.py); the API says
# "approved", as the seller and admin UIs do.
_EVENT_STATUS: dict[str, EventKycStatus] = {
    "pending": "pending",
    "approved": "verified",
    "rejected": "rejected",
}


MAX_PAGE_SIZE = 100


class SellersUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the seller repository attached."""

    sellers: SellerRepository


@dataclass(frozen=True)
class SellerApplication:
    """What a customer supplies to become a seller."""

    legal_name: str
    display_name: str
    business_type: str
    country: str
    region: str
    documents: Sequence[SellerDocument]
    categories: Sequence[str] = ()


@dataclass(frozen=True)
class SellerPage:
    """One page of sellers and the total count."""

    items: list[Seller]
    total: int


class SellerService:
    """The Seller Service of the seed: onboarding and KYC."""

    def __init__(
        self,
        uow: Callable[[], SellersUnitOfWork],
        *,
        regions: Collection[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._regions = frozenset(regions)
        self._clock = clock

    def apply(self, customer_id: str, application: SellerApplication) -> Seller:
        """Open a pending seller account and emit ``seller.applied``; SellerExists on a second."""
        if application.business_type not in BUSINESS_TYPES:
            raise InvalidRequest(
                f"unknown business type {application.business_type!r}; use individual or company",
                code="invalid_business_type",
            )
        check_location(application.country, application.region, self._regions)
        now = self._clock()
        seller = Seller(
            seller_id=new_id("sel"),
            customer_id=customer_id,
            legal_name=check_name("legal_name", application.legal_name),
            display_name=check_name("display_name", application.display_name),
            business_type="company" if application.business_type == "company" else "individual",
            country=application.country,
            region=application.region,
            documents=check_documents(list(application.documents)),
            kyc_status="pending",
            created_at=now,
            updated_at=now,
        )
        seller.history.append(
            KycTransition(seller.seller_id, None, "pending", now, reviewer_id=None, reason=None)
        )
        with self._uow() as uow:
            uow.sellers.add(seller)
            uow.emit(
                REGISTRY.new_event(
                    "seller.applied",
                    SellerApplied(
                        seller_id=seller.seller_id,
                        display_name=seller.display_name,
                        business_type=seller.business_type,
                        country=seller.country,
                        region=seller.region,
                        categories=list(application.categories),
                    ),
                    region=seller.region,
                    occurred_at=now,
                )
            )
            uow.commit()
        return seller

    def get(self, seller_id: str, customer_id: str | None = None) -> Seller:
        """A seller with its KYC history; ``customer_id`` restricts it to its owner (else 404)."""
        with self._uow() as uow:
            seller = uow.sellers.get(seller_id)
        if seller is None or (customer_id is not None and seller.customer_id != customer_id):
            raise NotFound(f"no seller {seller_id}", code="seller_not_found")
        return seller

    def seller_of(self, customer_id: str) -> Seller | None:
        """The customer's seller account in any KYC status, or None."""
        with self._uow() as uow:
            return uow.sellers.by_customer(customer_id)

    def approved_seller_of(self, customer_id: str) -> Seller | None:
        """The customer's seller account if it passed KYC, else None."""
        seller = self.seller_of(customer_id)
        return seller if seller is not None and seller.is_approved else None

    def require_approved_seller(self, customer_id: str) -> Seller:
        """The customer's approved seller; NotASeller / SellerNotApproved (403) otherwise."""
        seller = self.seller_of(customer_id)
        if seller is None:
            raise NotASeller("apply first: POST /v1/sellers", customer_id=customer_id)
        if not seller.is_approved:
            raise SellerNotApproved(
                f"seller {seller.seller_id} is {seller.kyc_status}: only approved sellers list "
                "products",
                seller_id=seller.seller_id,
                kyc_status=seller.kyc_status,
            )
        return seller

    def decide_kyc(
        self, seller_id: str, decision: str, *, reviewer_id: str, reason: str | None = None
    ) -> Seller:
        """Record a reviewer's decision and emit ``seller.kyc_changed``; 409 if illegal now."""
        with self._uow() as uow:
            seller = uow.sellers.get(seller_id, for_update=True)
            if seller is None:
                raise NotFound(f"no seller {seller_id}", code="seller_not_found")
            transition = seller.decide(
                decision, reviewer_id=reviewer_id, reason=reason, at=self._clock()
            )
            uow.sellers.record(seller, transition)
            uow.emit(
                REGISTRY.new_event(
                    "seller.kyc_changed",
                    SellerKycChanged(
                        seller_id=seller.seller_id,
                        old_status=_event_status(transition.from_status),
                        new_status=_EVENT_STATUS[transition.to_status],
                        reason=transition.reason,
                        reviewer_id=reviewer_id,
                        documents_verified=(
                            [d.kind for d in seller.documents] if seller.is_approved else []
                        ),
                    ),
                    region=seller.region,
                    occurred_at=transition.at,
                )
            )
            uow.commit()
        return seller

    def by_status(self, status: str, *, page: int = 1, page_size: int = 20) -> SellerPage:
        """Sellers in a KYC status (the admin review queue), oldest application first."""
        if status not in KYC_STATUSES:
            raise InvalidRequest(
                f"unknown KYC status {status!r}; use one of {', '.join(sorted(KYC_STATUSES))}",
                code="invalid_status",
            )
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(
                f"page must be >= 1 and page_size 1..{MAX_PAGE_SIZE}", code="invalid_page"
            )
        with self._uow() as uow:
            items, total = uow.sellers.by_status(
                status, offset=(page - 1) * page_size, limit=page_size
            )
        return SellerPage(items, total)


def _event_status(status: KycStatus | None) -> EventKycStatus | None:
    return None if status is None else _EVENT_STATUS[status]
