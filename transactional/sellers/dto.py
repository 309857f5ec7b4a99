"""Request and response bodies of the seller API (msgspec structs at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.common import CountryCode, RegionCode
from transactional.sellers.model import KycTransition, Seller

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A KYC document: its kind and the document store's reference (never the file)."""

    kind: Token
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ApplySeller(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/sellers."""

    legal_name: Name
    display_name: Name
    business_type: Literal["individual", "company"]
    country: CountryCode
    region: RegionCode
    documents: Annotated[list[DocumentIn], msgspec.Meta(max_length=50)]
    categories: Annotated[list[Token], msgspec.Meta(max_length=50)] = []


class KycDecisionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/admin/sellers/{id}/kyc."""

    decision: Literal["approved", "rejected"]
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class DocumentOut(msgspec.Struct, kw_only=True):
    """A KYC document on file."""

    kind: str
    reference: str


class KycTransitionOut(msgspec.Struct, kw_only=True):
    """One step of the KYC history."""

    from_status: str | None
    to_status: str
    at: datetime
    reviewer_id: str | None
    reason: str | None

    @classmethod
    def of(cls, transition: KycTransition) -> KycTransitionOut:
        """The response body of a domain transition."""
        return cls(
            from_status=transition.from_status,
            to_status=transition.to_status,
            at=transition.at,
            reviewer_id=transition.reviewer_id,
            reason=transition.reason,
        )


class SellerOut(msgspec.Struct, kw_only=True):
    """A seller account as its owner or an admin sees it."""

    seller_id: str
    customer_id: str
    legal_name: str
    display_name: str
    business_type: str
    country: str
    region: str
    kyc_status: str
    documents: list[DocumentOut]
    kyc_history: list[KycTransitionOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, seller: Seller) -> SellerOut:
        """The response body of a domain seller."""
        return cls(
            seller_id=seller.seller_id,
            customer_id=seller.customer_id,
            legal_name=seller.legal_name,
            display_name=seller.display_name,
            business_type=seller.business_type,
            country=seller.country,
            region=seller.region,
            kyc_status=seller.kyc_status,
            documents=[DocumentOut(kind=d.kind, reference=d.reference) for d in seller.documents],
            kyc_history=[KycTransitionOut.of(t) for t in seller.history],
            created_at=seller.created_at,
            updated_at=seller.updated_at,
        )


class SellerPageOut(msgspec.Struct, kw_only=True):
    """A page of sellers (the admin review queue)."""

    items: list[SellerOut]
    page: int
    page_size: int
    total: int
