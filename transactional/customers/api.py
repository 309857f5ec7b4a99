"""HTTP controllers of the customer slice: registration, sign-in, profile and addresses."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from transactional.customers.dto import (
    AddressIn,
    AddressOut,
    CustomerOut,
    RegisterCustomer,
    TokenRequest,
    TokenResponse,
)
from transactional.customers.service import CustomerService, NewAddress, Registration
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


class CustomerController(Controller):
    """/v1/customers: accounts and addresses."""

    path = "/v1/customers"
    tags = ("customers",)

    # Rate-limited per client IP (serving/ratelimit.py: SOUK_RATELIMIT_AUTH_PER_MIN).
    @post("/", status_code=HTTP_201_CREATED, sync_to_thread=True, opt={"rate_limit": "auth"})
    def register(
        self, data: JSONBody[RegisterCustomer], customers: Inject[CustomerService]
    ) -> CustomerOut:
        """Register a customer account."""
        customer = customers.register(
            Registration(
                email=data.email,
                password=data.password,
                name=data.name,
                region=data.region,
                locale=data.locale,
                currency=data.currency,
                country=data.country,
                marketing_opt_in=data.marketing_opt_in,
            )
        )
        return CustomerOut.of(customer)

    @get("/me", sync_to_thread=True)
    def me(self, principal: Inject[Principal], customers: Inject[CustomerService]) -> CustomerOut:
        """The caller's profile with addresses."""
        return CustomerOut.of(customers.get(principal.customer_id))

    @post("/me/addresses", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def add_address(
        self,
        data: JSONBody[AddressIn],
        principal: Inject[Principal],
        customers: Inject[CustomerService],
    ) -> AddressOut:
        """Save a delivery address (the first one becomes the default)."""
        address = customers.add_address(
            principal.customer_id,
            NewAddress(
                full_name=data.full_name,
                line1=data.line1,
                line2=data.line2,
                city=data.city,
                subdivision=data.subdivision,
                postal_code=data.postal_code,
                country=data.country,
                phone=data.phone,
                is_default=data.is_default,
            ),
        )
        return AddressOut.of(address)

    @get("/me/addresses", sync_to_thread=True)
    def addresses(
        self, principal: Inject[Principal], customers: Inject[CustomerService]
    ) -> list[AddressOut]:
        """The caller's addresses, default first."""
        return [AddressOut.of(a) for a in customers.addresses(principal.customer_id)]


class AuthController(Controller):
    """/v1/auth: bearer tokens."""

    path = "/v1/auth"
    tags = ("auth",)

    # Rate-limited per client IP (serving/ratelimit.py: SOUK_RATELIMIT_AUTH_PER_MIN).
    @post("/token", status_code=HTTP_200_OK, sync_to_thread=True, opt={"rate_limit": "auth"})
    def token(
        self, data: JSONBody[TokenRequest], customers: Inject[CustomerService]
    ) -> TokenResponse:
        """Exchange email and password for a bearer token; merges a guest cart if given."""
        session = customers.sign_in(data.email, data.password, data.guest_cart_id)
        return TokenResponse(
            access_token=session.token,
            token_type="bearer",
            expires_at=session.expires_at,
            customer_id=session.customer.customer_id,
            cart_id=session.cart_id,
        )


ROUTES = [CustomerController, AuthController]
