"""The seller domain: applications to sell and their KYC review. Pure Python, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args

from transactional.shared.errors import Conflict, Forbidden, InvalidRequest
from transactional.shared.regions import REGION_COUNTRIES

KycStatus = Literal["pending", "approved", "rejected"]
KycDecision = Literal["approved", "rejected"]
BusinessType = Literal["individual", "company"]

KYC_STATUSES: frozenset[str] = frozenset(get_args(KycStatus))
BUSINESS_TYPES: frozenset[str] = frozenset(get_args(BusinessType))
DOCUMENT_KINDS: frozenset[str] = frozenset(
    {"business_registration", "tax_id", "identity", "bank_account", "address_proof"}
)
# The state machine: a decision is final; a rejected merchant applies again with support.
KYC_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"approved", "rejected"}),
    "approved": frozenset(),
    "rejected": frozenset(),
}
MAX_NAME_LENGTH = 128  # the event schema's id-sized limit on display names
MAX_REFERENCE_LENGTH = 200
MAX_DOCUMENTS = 20
MAX_REASON_LENGTH = 1000


class SellerExists(Conflict):
    """The customer already has a seller account (one per customer)."""

    code = "seller_exists"


class IllegalKycTransition(Conflict):
    """The KYC decision does not apply to the seller's current status."""

    code = "illegal_kyc_transition"


class NotASeller(Forbidden):
    """The caller has no seller account."""

    code = "not_a_seller"


class SellerNotApproved(Forbidden):
    """The caller's seller account has not passed KYC (yet)."""

    code = "seller_not_approved"


@dataclass(frozen=True)
class SellerDocument:
    """A KYC document by kind and the reference of the file held by the document store."""

    kind: str
    reference: str


@dataclass(frozen=True)
class KycTransition:
    """One recorded move of a seller's KYC status (``from_status`` None for the application)."""

    seller_id: str
    from_status: KycStatus | None
    to_status: KycStatus
    at: datetime
    reviewer_id: str | None
    reason: str | None


@dataclass
class Seller:
    """A merchant account owned by one customer; it may list products once approved."""

    seller_id: str
    customer_id: str
    legal_name: str
    display_name: str
    business_type: BusinessType
    country: str
    region: str
    documents: list[SellerDocument]
    kyc_status: KycStatus
    created_at: datetime
    updated_at: datetime
    history: list[KycTransition] = field(default_factory=list)

    @property
    def is_approved(self) -> bool:
        """Whether KYC passed, i.e. the seller may list products."""
        return self.kyc_status == "approved"

    def decide(
        self, decision: str, *, reviewer_id: str, reason: str | None, at: datetime
    ) -> KycTransition:
        """Apply a reviewer's KYC decision; IllegalKycTransition unless it follows the machine."""
        if decision not in ("approved", "rejected"):
            raise InvalidRequest(
                f"unknown KYC decision {decision!r}; use approved or rejected",
                code="invalid_decision",
            )
        cleaned = _clean_reason(reason)
        if decision == "rejected" and cleaned is None:
            raise InvalidRequest("a rejection needs a reason", code="reason_required")
        if decision not in KYC_TRANSITIONS[self.kyc_status]:
            raise IllegalKycTransition(
                f"seller {self.seller_id} is {self.kyc_status}; it cannot become {decision}",
                kyc_status=self.kyc_status,
                decision=decision,
            )
        transition = KycTransition(
            seller_id=self.seller_id,
            from_status=self.kyc_status,
            to_status="approved" if decision == "approved" else "rejected",
            at=at,
            reviewer_id=reviewer_id,
            reason=cleaned,
        )
        self.kyc_status = transition.to_status
        self.updated_at = at
        self.history.append(transition)
        return transition


def _clean_reason(reason: str | None) -> str | None:
    cleaned = (reason or "").strip()
    if len(cleaned) > MAX_REASON_LENGTH:
        raise InvalidRequest(
            f"the reason is over {MAX_REASON_LENGTH} characters", code="invalid_reason"
        )
    return cleaned or None


def check_name(label: str, value: str) -> str:
    """A trimmed, non-empty name of at most MAX_NAME_LENGTH characters."""
    cleaned = value.strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"{label} must have 1 to {MAX_NAME_LENGTH} characters", code=f"invalid_{label}"
        )
    return cleaned


def check_location(country: str, region: str, served_regions: frozenset[str]) -> None:
    """The region is served here and covers the seller's country."""
    if region not in served_regions:
        raise InvalidRequest(
            f"unknown region {region!r}; Souk serves {', '.join(sorted(served_regions))}",
            code="unknown_region",
        )
    if country not in REGION_COUNTRIES.get(region, frozenset()):
        raise InvalidRequest(
            f"region {region} does not serve country {country!r}",
            code="country_not_in_region",
        )


def check_documents(documents: list[SellerDocument]) -> list[SellerDocument]:
    """At least one KYC document, of known kinds, each kind once, each with a reference."""
    if not documents:
        raise InvalidRequest(
            "KYC needs at least one document (e.g. identity or business_registration)",
            code="documents_required",
        )
    if len(documents) > MAX_DOCUMENTS:
        raise InvalidRequest(f"at most {MAX_DOCUMENTS} documents", code="too_many_documents")
    kinds: set[str] = set()
    cleaned: list[SellerDocument] = []
    for document in documents:
        if document.kind not in DOCUMENT_KINDS:
            raise InvalidRequest(
                f"unknown document kind {document.kind!r}; use one of "
                f"{', '.join(sorted(DOCUMENT_KINDS))}",
                code="unknown_document_kind",
            )
        if document.kind in kinds:
            raise InvalidRequest(
                f"document kind {document.kind} given twice", code="duplicate_document"
            )
        reference = document.reference.strip()
        if not reference or len(reference) > MAX_REFERENCE_LENGTH:
            raise InvalidRequest(
                f"the {document.kind} reference must have 1 to {MAX_REFERENCE_LENGTH} characters",
                code="invalid_document_reference",
            )
        kinds.add(document.kind)
        cleaned.append(SellerDocument(document.kind, reference))
    return cleaned


class SellerRepository(Protocol):
    """Stores sellers and the history of their KYC status."""

    def add(self, seller: Seller) -> None:
        """Insert a new seller with its first transition; SellerExists if the customer has one."""

    def get(self, seller_id: str, *, for_update: bool = False) -> Seller | None:
        """A seller with its KYC history, or None; ``for_update`` locks it for a decision."""

    def by_customer(self, customer_id: str) -> Seller | None:
        """The seller account of a customer, or None."""

    def record(self, seller: Seller, transition: KycTransition) -> None:
        """Persist the seller's new KYC status and append the transition."""

    def by_status(self, status: str, *, offset: int, limit: int) -> tuple[list[Seller], int]:
        """Sellers in a KYC status, oldest application first, and how many there are."""
