"""HTTP controller of search: GET /v1/search."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter

from serving.search.model import SORTS, SearchRequest
from serving.search.schemas import EXAMPLE, SearchOut
from serving.search.service import SearchService
from transactional.shared.auth import Principal
from transactional.shared.errors import Forbidden
from transactional.shared.http import Inject

_PROBLEM_EXAMPLE = {
    "type": "https://souk.dev/problems/invalid_price_range",
    "title": "Unprocessable content",
    "status": 422,
    "detail": "price_min is above price_max",
    "code": "invalid_price_range",
    "parameter": "price_min",
}


def _example(value: object, summary: str) -> list[Example]:
    return [Example(summary=summary, value=value)]


class SearchController(Controller):
    """/v1/search: products by words, filters and facets, in any region or all of them."""

    path = "/v1/search"
    tags = ("search",)

    @get(
        "/",
        sync_to_thread=True,
        responses={
            200: ResponseSpec(
                SearchOut,
                description="One page of hits, the total, facets and the query as understood",
                examples=_example(EXAMPLE, "a misspelled query, corrected"),
            ),
            422: ResponseSpec(
                None,
                description="A bad parameter: see `code` and `parameter`",
                media_type="application/problem+json",
                examples=_example(_PROBLEM_EXAMPLE, "price_min above price_max"),
            ),
        },
    )
    def search(
        self,
        search: Inject[SearchService],
        maybe_principal: Inject[Principal | None],
        q: Annotated[
            str,
            Parameter(
                description="Words; typos are corrected, synonyms expanded",
                examples=_example("wireles hedphones", "misspelled"),
            ),
        ] = "",
        category: Annotated[
            str | None,
            Parameter(
                description="A category id (its subcategories included)",
                examples=_example("cat_electronics_audio", "audio"),
            ),
        ] = None,
        brand: Annotated[str | None, Parameter(examples=_example("Sonyx", "one brand"))] = None,
        seller: Annotated[
            str | None, Parameter(examples=_example("sel_0193b0a4c2e27c4e", "one seller"))
        ] = None,
        price_min: Annotated[
            int | None,
            Parameter(
                description="Minor units of `currency`, inclusive",
                examples=_example(5000, "50.00"),
            ),
        ] = None,
        price_max: Annotated[
            int | None,
            Parameter(
                description="Minor units of `currency`, inclusive",
                examples=_example(20000, "200.00"),
            ),
        ] = None,
        currency: Annotated[
            str,
            Parameter(
                description="Prices, filters and ranges in this currency (SOUK_FX_RATES)",
                examples=_example("USD", "dollars"),
            ),
        ] = "EUR",
        in_stock: Annotated[bool | None, Parameter(examples=_example(True, "buyable now"))] = None,
        prime: Annotated[bool | None, Parameter(examples=_example(True, "Prime only"))] = None,
        sort: Annotated[
            str,
            Parameter(
                description=f"One of {', '.join(SORTS)}",
                examples=_example("price_asc", "cheapest first"),
            ),
        ] = "relevance",
        page: Annotated[int, Parameter(examples=_example(1, "first page"))] = 1,
        page_size: Annotated[int, Parameter(examples=_example(20, "twenty"))] = 20,
        region: Annotated[
            str | None,
            Parameter(
                description="A region's index (default: this server's), or `all` to merge",
                examples=_example("all", "cross-border"),
            ),
        ] = None,
        user: Annotated[
            str | None,
            Parameter(
                description="Personalize for this customer: the caller, or anyone for admins "
                "(a signed-in caller is used by default)",
                examples=_example("cus_0193b0a4c2e27c4e", "a customer"),
            ),
        ] = None,
    ) -> SearchOut:
        """Search listed products: BM25 with typo tolerance, filters, facets, sorting."""
        if user is not None and (
            maybe_principal is None
            or (maybe_principal.customer_id != user and not maybe_principal.is_admin)
        ):
            raise Forbidden(
                "user: personalize for yourself (sign in) or use an admin token",
                code="personalization_forbidden",
            )
        customer = user or (maybe_principal.customer_id if maybe_principal else None)
        found = search.search(
            SearchRequest(
                q=q,
                category=category,
                brand=brand,
                seller=seller,
                price_min=price_min,
                price_max=price_max,
                currency=currency.upper(),
                in_stock=in_stock,
                prime=prime,
                sort=sort,
                page=page,
                page_size=page_size,
                region=region.lower() if region else None,
                user=customer,
            )
        )
        return SearchOut.of(found)


ROUTES = [SearchController]
