"""Sellers domain (aggregate ``seller``): onboarding and KYC (required before selling)."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.common import CountryCode, Id, RegionCode
from schemas.spec import EventSpec

__all__ = ["SPECS", "KycStatus", "SellerApplied", "SellerKycChanged"]

KycStatus = Literal["pending", "in_review", "verified", "rejected", "suspended"]


class SellerApplied(msgspec.Struct, frozen=True, kw_only=True):
    """seller.applied: a merchant applied to sell; KYC starts as ``pending``."""

    seller_id: Id
    display_name: Id
    business_type: Literal["individual", "company"]
    country: CountryCode
    region: RegionCode
    categories: list[str] = []  # category ids they intend to sell in
    prime_requested: bool = False


class SellerKycChanged(msgspec.Struct, frozen=True, kw_only=True):
    """seller.kyc_changed: the seller's KYC status moved (listing is gated on ``verified``)."""

    seller_id: Id
    old_status: KycStatus | None = None
    new_status: KycStatus
    reason: str | None = None
    reviewer_id: Id | None = None  # None for automated decisions
    # Document kinds checked, e.g. "tax_id", "bank_account"; never document contents.
    documents_verified: list[str] = []


SPECS = (
    EventSpec("seller.applied", 1, "sellers", "seller", SellerApplied, "seller_id"),
    EventSpec("seller.kyc_changed", 1, "sellers", "seller", SellerKycChanged, "seller_id"),
)
