"""Request and response bodies of the checkout API, and the rendering of stored responses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from ipaddress import ip_network
from typing import Annotated, Any, Literal

import msgspec

from schemas.common import CountryCode
from serving.problems import status_of
from transactional.checkout.model import (
    UPI_TOKEN_PREFIX,
    Card,
    Checkout,
    CheckoutRequest,
    ClientContext,
    PaymentMethod,
    ShippingAddress,
    Stage,
    StoredResponse,
    Totals,
    check_device_id,
)
from transactional.payments.threeds import THREE_DS_CONFIRM_PATH
from transactional.shared.errors import DomainError, InvalidRequest
from transactional.shared.regions import (
    IpNetwork,
    IpRegionTable,
    ip_region_table,
    parse_ip,
    region_of_ip,
)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

CHECKOUT_PATH = "/v1/checkout"
# The titles serving/problems.py gives these statuses, so stored and live problems match.
_TITLES = {
    400: "Bad request",
    402: "Payment declined",
    404: "Not found",
    409: "Conflict",
    422: "Unprocessable content",
}


class CardIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A raw card; it goes to the processor's vault and is never stored or logged by us."""

    number: Annotated[str, msgspec.Meta(min_length=12, max_length=23)]
    exp_month: Annotated[int, msgspec.Meta(ge=1, le=12)]
    exp_year: Annotated[int, msgspec.Meta(ge=0, le=9999)]
    cvc: Annotated[str, msgspec.Meta(min_length=3, max_length=4)]
    holder: Text | None = None

    def __repr__(self) -> str:
        return f"CardIn(number='…{self.number[-4:]}', cvc='***')"


class EmiChoiceIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An EMI plan (see GET /v1/payments/emi-plans): its term and the card's bank."""

    months: Literal[3, 6, 12]
    bank: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{1,31}$")]


class PaymentMethodIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """{type: card, card: {...}}, {type: card, token: "tok_..."} or (India, INR) {type: upi,
    vpa: "name@bank"}."""

    type: Literal["card", "upi", "wallet", "emi"]
    card: CardIn | None = None
    token: Id | None = None
    vpa: Annotated[str, msgspec.Meta(min_length=3, max_length=100)] | None = None
    # {type: wallet}; a split {type: card, card|token, wallet_amount_minor} (the wallet pays
    # up to it, the card the rest); {type: emi, card|token, emi: {months, bank}}.
    wallet_amount_minor: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None = None
    emi: EmiChoiceIn | None = None

    def check_wallet_and_emi(self) -> None:
        """422 when the wallet/EMI fields do not fit the type."""
        if (self.type == "emi") != (self.emi is not None):
            raise InvalidRequest(
                "payment_method: type emi needs `emi: {months, bank}` (and only it does)",
                code="invalid_payment_method",
            )
        if self.wallet_amount_minor is not None and self.type != "card":
            raise InvalidRequest(
                "payment_method: wallet_amount_minor splits a card payment (type card)",
                code="invalid_payment_method",
            )
        if self.type in ("wallet", "emi") and self.vpa is not None:
            raise InvalidRequest(
                f"payment_method: type {self.type} takes no `vpa`", code="invalid_payment_method"
            )

    def check(self) -> None:
        """422 when the fields do not fit the type (a card's with upi, a VPA with card)."""
        upi = self.type == "upi"
        if upi != (self.vpa is not None) or (upi and (self.card or self.token)):
            raise InvalidRequest(
                "payment_method: type upi takes only a `vpa`; type card a `card` or `token`",
                code="invalid_payment_method",
            )


_ADDRESS_FIELDS = (
    "full_name",
    "line1",
    "line2",
    "city",
    "subdivision",
    "postal_code",
    "country",
    "phone",
)


class ShippingAddressIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """{address_id} of a saved address, or a full address typed at checkout."""

    address_id: Id | None = None
    full_name: Text | None = None
    line1: Text | None = None
    line2: Text | None = None
    city: Text | None = None
    subdivision: Annotated[str, msgspec.Meta(max_length=10)] | None = None
    postal_code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)] | None = None
    country: CountryCode | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None

    def to_domain(self) -> tuple[str | None, ShippingAddress | None]:
        """(address_id, None) or (None, typed address); 422 for a half-filled one."""
        typed = {name: getattr(self, name) for name in _ADDRESS_FIELDS}
        if self.address_id is not None:
            given = sorted(name for name, value in typed.items() if value is not None)
            if given:
                raise InvalidRequest(
                    "send either address_id or a full address, not both",
                    code="invalid_shipping_address",
                    fields=given,
                )
            return self.address_id, None
        missing = [
            name
            for name in ("full_name", "line1", "city", "postal_code", "country")
            if typed[name] is None
        ]
        if missing:
            raise InvalidRequest(
                f"the shipping address lacks {', '.join(missing)} (or send an address_id)",
                code="invalid_shipping_address",
                missing=missing,
            )
        return None, ShippingAddress(**typed)


class CheckoutIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/checkout."""

    cart_id: Id
    shipping_address: ShippingAddressIn
    payment_method: PaymentMethodIn

    def to_domain(self, context: ClientContext | None = None) -> CheckoutRequest:
        """The domain request (422 for contradictory or incomplete choices), from the client
        ``context`` (see :class:`ClientNetworks`)."""
        address_id, address = self.shipping_address.to_domain()
        self.payment_method.check()
        self.payment_method.check_wallet_and_emi()
        chosen = self.payment_method
        card_in = self.payment_method.card
        card = (
            None
            if card_in is None
            else Card(
                number=card_in.number,
                exp_month=card_in.exp_month,
                exp_year=card_in.exp_year,
                cvc=card_in.cvc,
                holder=card_in.holder,
            )
        )
        return CheckoutRequest(
            cart_id=self.cart_id,
            payment=PaymentMethod(
                card=card,
                token=self.payment_method.token,
                vpa=self.payment_method.vpa,
                wallet=chosen.type == "wallet",
                wallet_minor=chosen.wallet_amount_minor,
                emi=None if chosen.emi is None else (chosen.emi.months, chosen.emi.bank),
            ),
            address_id=address_id,
            address=address,
            context=context or ClientContext(),
        )


# -- where a request comes from -----------------------------------------------------------------


def _host(hop: str) -> str:
    """The address of an X-Forwarded-For hop, without a port (``1.2.3.4:80``, ``[::1]:80``)."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has several colons)
        return hop.partition(":")[0]
    return hop


@dataclass(frozen=True)
class ClientNetworks:
    """Which peers' ``X-Forwarded-For`` is believed, and which region an address is in."""

    trusted_proxies: tuple[IpNetwork, ...]
    ip_regions: IpRegionTable

    @classmethod
    def of(
        cls, trusted_proxies: Iterable[str], ip_regions: Mapping[str, Iterable[str]]
    ) -> ClientNetworks:
        """From the settings (``SOUK_TRUSTED_PROXIES``, ``SOUK_IP_REGIONS``)."""
        return cls(
            tuple(ip_network(cidr, strict=False) for cidr in trusted_proxies),
            ip_region_table(ip_regions),
        )

    def trusted(self, address: str) -> bool:
        """Whether ``address`` is one of our proxies."""
        ip = parse_ip(address)
        return ip is not None and any(
            ip.version == net.version and ip in net for net in self.trusted_proxies
        )

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the socket peer, or, when the peer is a trusted proxy, the
        nearest address in ``X-Forwarded-For`` that is not one (walking from the right: what
        is left of it was written by the client and proves nothing); None if that hop is not
        an address.
        """
        if peer is None or parse_ip(peer) is None:
            return None
        client = peer
        if forwarded_for and self.trusted(peer):
            for hop in reversed([_host(h) for h in forwarded_for.split(",") if h.strip()]):
                client = hop
                if not self.trusted(hop):
                    break
        ip = parse_ip(client)
        return None if ip is None else str(ip)

    def context(
        self, peer: str | None, forwarded_for: str | None, device_id: str | None
    ) -> ClientContext:
        """The request's client context; DeviceIdInvalid (400) for a malformed device id."""
        device = check_device_id(device_id)
        ip = self.client_ip(peer, forwarded_for)
        region = None if ip is None else region_of_ip(ip, self.ip_regions)
        return ClientContext(device_id=device, client_ip=ip, ip_region=region)


class TotalsOut(msgspec.Struct, kw_only=True):
    """An order's money in minor units."""

    currency: str
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    tax_minor: int
    grand_total_minor: int

    @classmethod
    def of(cls, totals: Totals) -> TotalsOut:
        """The response body of domain totals."""
        return cls(
            currency=totals.currency,
            subtotal_minor=totals.subtotal_minor,
            discount_minor=totals.discount_minor,
            shipping_minor=totals.shipping_minor,
            tax_minor=totals.tax_minor,
            grand_total_minor=totals.grand_total_minor,
        )


class PaymentOut(msgspec.Struct, kw_only=True):
    """What happened to the money, and which card (last four digits only)."""

    payment_id: str | None
    status: str | None
    last4: str | None


class NextActionOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the payer must do before the payment goes on: answer a 3-D Secure challenge
    (``url``: POST there), or approve the collect request in their UPI app (``vpa``)."""

    type: str  # three_d_secure | upi_collect
    expires_at: datetime | None
    url: str | None = None
    method: str | None = None
    vpa: str | None = None

    @classmethod
    def of(cls, checkout: Checkout) -> NextActionOut:
        """The next action of a checkout waiting on the payer."""
        token = checkout.instrument_token or ""
        if checkout.payment_method == "upi":
            return cls(
                type="upi_collect",
                expires_at=checkout.lease_until,
                vpa=token.removeprefix(UPI_TOKEN_PREFIX),
            )
        assert checkout.payment_id is not None
        return cls(
            type="three_d_secure",
            expires_at=checkout.lease_until,
            url=THREE_DS_CONFIRM_PATH.format(payment_id=checkout.payment_id),
            method="POST",
        )


class CheckoutResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """201 of POST /v1/checkout: the paid order (``status: completed``), or the order on hold
    for a fraud review (``status: on_hold``: the payment authorized, not yet taken; a
    reviewer captures it or voids it and cancels the order)."""

    checkout_id: str
    order_id: str
    status: str
    totals: TotalsOut
    payment: PaymentOut
    next_action: NextActionOut | None = None

    @classmethod
    def of(cls, checkout: Checkout) -> CheckoutResult:
        """The success body of a completed checkout (or one on hold, or waiting on the
        payer: ``requires_action`` with its ``next_action``)."""
        assert checkout.order_id is not None and checkout.totals is not None
        waiting = checkout.stage is Stage.ACTION_REQUIRED
        status = "on_hold" if checkout.stage is Stage.HELD else checkout.status
        return cls(
            checkout_id=checkout.checkout_id,
            order_id=checkout.order_id,
            status="requires_action" if waiting else status,
            totals=TotalsOut.of(checkout.totals),
            payment=_payment(checkout),
            next_action=NextActionOut.of(checkout) if waiting else None,
        )


class StepOut(msgspec.Struct, kw_only=True):
    """One step of the saga and how it ended."""

    step: str
    outcome: str
    at: datetime


class FailureOut(msgspec.Struct, kw_only=True):
    """The step that failed and why."""

    step: str
    code: str
    detail: str


class CheckoutOut(msgspec.Struct, kw_only=True):
    """GET /v1/checkout/{checkout_id}: the saga's state."""

    checkout_id: str
    status: str
    stage: str
    cart_id: str
    order_id: str | None
    totals: TotalsOut | None
    payment: PaymentOut
    failure: FailureOut | None
    steps: list[StepOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, checkout: Checkout) -> CheckoutOut:
        """The response body of a saga."""
        failure = checkout.failure
        return cls(
            checkout_id=checkout.checkout_id,
            status=checkout.status,
            stage=checkout.stage.value,
            cart_id=checkout.cart_id,
            order_id=checkout.order_id,
            totals=None if checkout.totals is None else TotalsOut.of(checkout.totals),
            payment=_payment(checkout),
            failure=None
            if failure is None
            else FailureOut(step=failure.step, code=failure.code, detail=failure.detail),
            steps=[StepOut(step=r.step, outcome=r.outcome, at=r.at) for r in checkout.history],
            created_at=checkout.created_at,
            updated_at=checkout.updated_at,
        )


def _payment(checkout: Checkout) -> PaymentOut:
    return PaymentOut(
        payment_id=checkout.payment_id, status=checkout.payment_status, last4=checkout.card_last4
    )


def render(checkout: Checkout, error: DomainError | None) -> StoredResponse:
    """The response stored for a finished checkout: 201 with the order, or a problem+json body
    (RFC 9457, as serving/problems.py renders it) naming the failed step."""
    if error is None:
        result = CheckoutResult.of(checkout)
        # 202: accepted, the payer's confirmation pending (not 201: nothing is paid yet).
        code = 202 if result.next_action is not None else 201
        return StoredResponse(code, msgspec.to_builtins(result))
    status = status_of(error)
    body: dict[str, Any] = {
        "type": f"https://souk.dev/problems/{error.code}",
        "title": _TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": error.detail,
        "instance": CHECKOUT_PATH,
        "code": error.code,
        "checkout_id": checkout.checkout_id,
    }
    if checkout.failure is not None:
        body["step"] = checkout.failure.step
        extra = checkout.failure.extra
    else:
        extra = {}
    body.update({key: value for key, value in extra.items() if key not in body})
    if checkout.order_id is not None:
        body.setdefault("order_id", checkout.order_id)
    return StoredResponse(status, body)
