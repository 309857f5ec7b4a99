"""HTTP controllers of the cart slice.

Access: a guest cart is a capability (whoever holds its id may use it, with or without a
token); a customer's cart answers only to its owner's bearer token. Anyone else, including a
caller without a token, gets the same 404 ``cart_not_found`` as for an unknown or expired
cart, so a cart id never reveals whether it exists.

Limits: at most 99 units of one SKU (409 ``quantity_limit_exceeded``), never more than
inventory has available (409 ``insufficient_stock``), at most 100 SKUs (409 ``cart_full``).
An unknown SKU is 422 ``unknown_sku``, a product not on sale 422 ``not_for_sale``, a SKU
without a price in the cart currency 422 ``price_unavailable``.
"""

from __future__ import annotations

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from transactional.carts.dto import AddItem, CartOut, CreateCart, SetQuantity
from transactional.carts.service import Attribution, CartService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


class CartController(Controller):
    """/v1/carts: guest and customer carts."""

    path = "/v1/carts"
    tags = ("carts",)

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        description=(
            "Open a cart (201). A customer (bearer token) has at most one active cart: asking "
            "again returns it with 200 (same currency, or none sent); another currency is 409 "
            "`cart_currency_mismatch` naming that cart. An unsupported currency is 422 "
            "`unsupported_currency` for guests and customers alike."
        ),
    )
    def create(
        self,
        carts: Inject[CartService],
        maybe_principal: Inject[Principal | None],
        data: JSONBody[CreateCart | None] = None,
    ) -> Response[CartOut]:
        """Open a cart, or return the customer's active one."""
        view, created = carts.create(maybe_principal, data.currency if data else None)
        return Response(CartOut.of(view), status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/{cart_id:str}", sync_to_thread=True)
    def read(
        self,
        cart_id: FromPath[str],
        carts: Inject[CartService],
        maybe_principal: Inject[Principal | None],
    ) -> CartOut:
        """The cart with current prices, availability and flags."""
        return CartOut.of(carts.view(cart_id, maybe_principal))

    @post("/{cart_id:str}/items", status_code=HTTP_200_OK, sync_to_thread=True)
    def add_item(
        self,
        cart_id: FromPath[str],
        data: JSONBody[AddItem],
        carts: Inject[CartService],
        maybe_principal: Inject[Principal | None],
    ) -> CartOut:
        """Add units of a SKU (adds to the line if it is already in the cart)."""
        view = carts.add_item(
            cart_id,
            maybe_principal,
            data.sku,
            data.quantity,
            Attribution(
                session_id=data.session_id,
                recommendation_id=data.recommendation_id,
                search_id=data.search_id,
                channel=data.channel,
            ),
        )
        return CartOut.of(view)

    @patch("/{cart_id:str}/items/{sku:str}", sync_to_thread=True)
    def set_quantity(
        self,
        cart_id: FromPath[str],
        sku: FromPath[str],
        data: JSONBody[SetQuantity],
        carts: Inject[CartService],
        maybe_principal: Inject[Principal | None],
    ) -> CartOut:
        """Set a line's quantity; 0 removes the line."""
        return CartOut.of(carts.set_quantity(cart_id, maybe_principal, sku, data.quantity))

    @delete("/{cart_id:str}/items/{sku:str}", status_code=HTTP_200_OK, sync_to_thread=True)
    def remove_item(
        self,
        cart_id: FromPath[str],
        sku: FromPath[str],
        carts: Inject[CartService],
        maybe_principal: Inject[Principal | None],
    ) -> CartOut:
        """Remove a line."""
        return CartOut.of(carts.remove_item(cart_id, maybe_principal, sku))


ROUTES = [CartController]
