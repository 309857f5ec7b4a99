"""Seller onboarding and the KYC state machine on in-memory fakes: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.registry import REGISTRY
from schemas.sellers import SellerKycChanged
from tests.fakes import FakeUnitOfWork
from transactional.sellers.model import (
    IllegalKycTransition,
    KycTransition,
    NotASeller,
    Seller,
    SellerDocument,
    SellerExists,
    SellerNotApproved,
)
from transactional.sellers.service import SellerApplication, SellerService
from transactional.shared.errors import InvalidRequest, NotFound

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class FakeSellers:
    def __init__(self) -> None:
        self.rows: dict[str, Seller] = {}
        self.transitions: list[KycTransition] = []

    def add(self, seller: Seller) -> None:
        if any(s.customer_id == seller.customer_id for s in self.rows.values()):
            raise SellerExists(seller.customer_id)
        self.rows[seller.seller_id] = seller
        self.transitions.extend(seller.history)

    def get(self, seller_id: str, *, for_update: bool = False) -> Seller | None:
        return self.rows.get(seller_id)

    def by_customer(self, customer_id: str) -> Seller | None:
        return next((s for s in self.rows.values() if s.customer_id == customer_id), None)

    def record(self, seller: Seller, transition: KycTransition) -> None:
        self.rows[seller.seller_id] = seller
        self.transitions.append(transition)

    def by_status(self, status: str, *, offset: int, limit: int) -> tuple[list[Seller], int]:
        found = [s for s in self.rows.values() if s.kyc_status == status]
        return found[offset : offset + limit], len(found)


class FakeSellersUow(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.sellers = FakeSellers()


def make_service() -> tuple[SellerService, FakeSellersUow]:
    uow = FakeSellersUow()
    clock = iter(NOW + timedelta(seconds=i) for i in range(1000))
    return SellerService(lambda: uow, regions=["eu", "us"], clock=lambda: next(clock)), uow


def application(**overrides: object) -> SellerApplication:
    fields: dict[str, object] = {
        "legal_name": " Acme GmbH ",
        "display_name": "Acme",
        "business_type": "company",
        "country": "DE",
        "region": "eu",
        "documents": [SellerDocument("business_registration", " HRB-1 ")],
    }
    fields.update(overrides)
    return SellerApplication(**fields)  # type: ignore[arg-type]


def test_apply_opens_a_pending_account_and_emits_seller_applied() -> None:
    service, uow = make_service()
    seller = service.apply("cus_1", application(categories=["cat_books"]))
    assert seller.kyc_status == "pending"
    assert seller.legal_name == "Acme GmbH"
    assert seller.documents == [SellerDocument("business_registration", "HRB-1")]
    assert [(t.from_status, t.to_status) for t in uow.sellers.transitions] == [(None, "pending")]
    assert uow.event_types() == ["seller.applied"]
    event = uow.committed[0]
    assert event.aggregate_id == seller.seller_id and event.region == "eu"
    assert event.payload["categories"] == ["cat_books"]


def test_one_seller_per_customer() -> None:
    service, uow = make_service()
    service.apply("cus_1", application())
    with pytest.raises(SellerExists):
        service.apply("cus_1", application())
    assert uow.event_types() == ["seller.applied"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"business_type": "charity"}, "invalid_business_type"),
        ({"region": "mars"}, "unknown_region"),
        ({"region": "us"}, "country_not_in_region"),
        ({"documents": []}, "documents_required"),
        ({"documents": [SellerDocument("selfie", "x")]}, "unknown_document_kind"),
        ({"documents": [SellerDocument("tax_id", " ")]}, "invalid_document_reference"),
        (
            {"documents": [SellerDocument("tax_id", "a"), SellerDocument("tax_id", "b")]},
            "duplicate_document",
        ),
        ({"legal_name": "  "}, "invalid_legal_name"),
        ({"display_name": "x" * 129}, "invalid_display_name"),
    ],
)
def test_bad_applications_are_refused_without_side_effects(
    overrides: dict[str, object], code: str
) -> None:
    service, uow = make_service()
    with pytest.raises(InvalidRequest) as refused:
        service.apply("cus_1", application(**overrides))
    assert refused.value.code == code
    assert uow.sellers.rows == {} and uow.committed == []


def test_approve_records_the_transition_and_emits_verified() -> None:
    service, uow = make_service()
    seller = service.apply("cus_1", application())
    approved = service.decide_kyc(seller.seller_id, "approved", reviewer_id="adm_1", reason=" ok ")
    assert approved.kyc_status == "approved" and approved.is_approved
    last = uow.sellers.transitions[-1]
    assert (last.from_status, last.to_status, last.reviewer_id, last.reason) == (
        "pending",
        "approved",
        "adm_1",
        "ok",
    )
    assert last.at > seller.created_at
    assert uow.event_types() == ["seller.applied", "seller.kyc_changed"]
    payload = REGISTRY.payload_as(uow.committed[-1], SellerKycChanged)
    assert (payload.old_status, payload.new_status) == ("pending", "verified")
    assert payload.documents_verified == ["business_registration"]
    assert service.approved_seller_of("cus_1") is approved
    assert service.require_approved_seller("cus_1") is approved


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("approved", "approved"),
        ("approved", "rejected"),
        ("rejected", "approved"),
        ("rejected", "rejected"),
    ],
)
def test_decisions_are_final(first: str, second: str) -> None:
    service, uow = make_service()
    seller = service.apply("cus_1", application())
    service.decide_kyc(seller.seller_id, first, reviewer_id="adm", reason="because")
    with pytest.raises(IllegalKycTransition) as refused:
        service.decide_kyc(seller.seller_id, second, reviewer_id="adm", reason="again")
    assert refused.value.extra == {"kyc_status": first, "decision": second}
    assert len(uow.sellers.transitions) == 2
    assert uow.event_types() == ["seller.applied", "seller.kyc_changed"]


def test_rejection_needs_a_reason_and_unknown_decisions_are_refused() -> None:
    service, _ = make_service()
    seller = service.apply("cus_1", application())
    with pytest.raises(InvalidRequest) as no_reason:
        service.decide_kyc(seller.seller_id, "rejected", reviewer_id="adm", reason="  ")
    assert no_reason.value.code == "reason_required"
    with pytest.raises(InvalidRequest) as unknown:
        service.decide_kyc(seller.seller_id, "pending", reviewer_id="adm")
    assert unknown.value.code == "invalid_decision"
    with pytest.raises(NotFound):
        service.decide_kyc("sel_missing", "approved", reviewer_id="adm")
    assert service.get(seller.seller_id).kyc_status == "pending"


def test_only_approved_sellers_pass_the_gate() -> None:
    service, _ = make_service()
    with pytest.raises(NotASeller):
        service.require_approved_seller("cus_1")
    seller = service.apply("cus_1", application())
    assert service.approved_seller_of("cus_1") is None
    with pytest.raises(SellerNotApproved) as pending:
        service.require_approved_seller("cus_1")
    assert pending.value.extra["kyc_status"] == "pending"
    service.decide_kyc(seller.seller_id, "rejected", reviewer_id="adm", reason="fake id")
    with pytest.raises(SellerNotApproved):
        service.require_approved_seller("cus_1")


def test_get_is_for_the_owner_or_an_admin() -> None:
    service, _ = make_service()
    seller = service.apply("cus_1", application())
    assert service.get(seller.seller_id, "cus_1") is seller
    assert service.get(seller.seller_id) is seller  # admin: no owner filter
    with pytest.raises(NotFound):
        service.get(seller.seller_id, "cus_2")


def test_review_queue_pages_by_status() -> None:
    service, _ = make_service()
    for n in range(3):
        service.apply(f"cus_{n}", application())
    page = service.by_status("pending", page=2, page_size=2)
    assert (len(page.items), page.total) == (1, 3)
    with pytest.raises(InvalidRequest):
        service.by_status("frozen")
    with pytest.raises(InvalidRequest):
        service.by_status("pending", page=0)
