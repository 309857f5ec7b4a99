"""HTTP controllers of the seller slice: applying to sell, and the admin's KYC review."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from transactional.sellers.dto import ApplySeller, KycDecisionIn, SellerOut, SellerPageOut
from transactional.sellers.model import SellerDocument
from transactional.sellers.service import MAX_PAGE_SIZE, SellerApplication, SellerService
from transactional.shared.auth import Principal
from transactional.shared.errors import NotFound
from transactional.shared.http import Inject


class SellerController(Controller):
    """/v1/sellers: a customer's seller account."""

    path = "/v1/sellers"
    tags = ("sellers",)

    @post("/", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def apply(
        self,
        data: JSONBody[ApplySeller],
        principal: Inject[Principal],
        sellers: Inject[SellerService],
    ) -> SellerOut:
        """Apply to sell; the account starts pending KYC (one per customer, else 409)."""
        seller = sellers.apply(
            principal.customer_id,
            SellerApplication(
                legal_name=data.legal_name,
                display_name=data.display_name,
                business_type=data.business_type,
                country=data.country,
                region=data.region,
                documents=[SellerDocument(d.kind, d.reference) for d in data.documents],
                categories=data.categories,
            ),
        )
        return SellerOut.of(seller)

    @get("/me", sync_to_thread=True)
    def mine(self, principal: Inject[Principal], sellers: Inject[SellerService]) -> SellerOut:
        """The caller's own seller account, in any KYC status."""
        seller = sellers.seller_of(principal.customer_id)
        if seller is None:
            raise NotFound("you have no seller account: POST /v1/sellers", code="seller_not_found")
        return SellerOut.of(seller)

    @get("/{seller_id:str}", sync_to_thread=True)
    def read(
        self, seller_id: FromPath[str], principal: Inject[Principal], sellers: Inject[SellerService]
    ) -> SellerOut:
        """A seller account with its KYC history (its owner or an admin)."""
        owner = None if principal.is_admin else principal.customer_id
        return SellerOut.of(sellers.get(seller_id, owner))


class AdminSellerController(Controller):
    """/v1/admin/sellers: the KYC review queue and decisions (admin tokens only)."""

    path = "/v1/admin/sellers"
    tags = ("admin",)

    @get("/", sync_to_thread=True)
    def queue(
        self,
        principal: Inject[Principal],
        sellers: Inject[SellerService],
        status: FromQuery[Literal["pending", "approved", "rejected"]] = "pending",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 20,
    ) -> SellerPageOut:
        """Sellers in a KYC status, oldest application first (pending by default)."""
        principal.require_admin()
        found = sellers.by_status(status, page=page, page_size=page_size)
        return SellerPageOut(
            items=[SellerOut.of(s) for s in found.items],
            page=page,
            page_size=page_size,
            total=found.total,
        )

    @post("/{seller_id:str}/kyc", status_code=HTTP_200_OK, sync_to_thread=True)
    def decide(
        self,
        seller_id: FromPath[str],
        data: JSONBody[KycDecisionIn],
        principal: Inject[Principal],
        sellers: Inject[SellerService],
    ) -> SellerOut:
        """Approve or reject a pending seller; a decided seller cannot be decided again (409)."""
        principal.require_admin()
        seller = sellers.decide_kyc(
            seller_id, data.decision, reviewer_id=principal.customer_id, reason=data.reason
        )
        return SellerOut.of(seller)


ROUTES = [SellerController, AdminSellerController]
