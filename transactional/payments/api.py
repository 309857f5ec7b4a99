"""HTTP controllers of the payment slice (each block appended by its owner)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from transactional.checkout.dto import CardIn
from transactional.checkout.model import check_idempotency_key
from transactional.payments.emi import EmiRates
from transactional.payments.model import Card, PaymentNotFound
from transactional.payments.service import PaymentService
from transactional.payments.threeds import ThreeDSChallenges
from transactional.payments.wallet import MAX_TOPUP_MINOR
from transactional.payments.wallet_moves import region_of_currency
from transactional.payments.wallet_service import WalletService
from transactional.payments.webhooks import SIGNATURE_HEADER, WebhookService
from transactional.shared.auth import Principal
from transactional.shared.http import Inject
from transactional.shared.regions import REGION_CURRENCY

# --- async payments: webhooks and 3-D Secure (ASYNC) ---

Signature = Annotated[
    str | None,
    HeaderParameter(
        name=SIGNATURE_HEADER,
        required=False,
        description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + the raw body under the "
        "provider's shared secret>.",
    ),
]


class WebhookOut(msgspec.Struct, kw_only=True):
    """What a delivery did: ``applied``, or ``ignored`` (a duplicate or stale news)."""

    delivery_id: str
    outcome: str
    payment_id: str | None
    payment_status: str | None


class WebhookController(Controller):
    """/v1/payments/webhooks: deliveries from payment providers, verified by signature."""

    path = "/v1/payments/webhooks"
    tags = ("payments",)

    @post("/{provider:str}", status_code=HTTP_200_OK)
    async def receive(
        self,
        request: Request[Any, Any, Any],
        provider: FromPath[str],
        payment_webhooks: Inject[WebhookService],
        signature: Signature = None,
    ) -> WebhookOut:
        """Apply one signed delivery once: 401 for a bad or stale signature, 409
        ``webhook_replayed`` for a delivery id seen before, 404 for an unknown provider;
        nothing changes on any of them."""
        body = await request.body()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            None, payment_webhooks.receive, provider, signature, body
        )
        return WebhookOut(
            delivery_id=result.delivery_id,
            outcome=result.outcome,
            payment_id=result.payment_id,
            payment_status=result.payment_status,
        )


class ChallengeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The payer's answer to a 3-D Secure challenge (sandbox)."""

    outcome: Literal["approve", "fail"] = "approve"


class ChallengeOut(msgspec.Struct, kw_only=True):
    """The payment after the payer's answer (its checkout goes on by itself)."""

    payment_id: str
    order_id: str
    status: str
    decline_code: str | None


class ThreeDSController(Controller):
    """/v1/payments/{payment_id}/3ds: the sandbox's 3-D Secure challenge page."""

    path = "/v1/payments"
    tags = ("payments",)

    @post("/{payment_id:str}/3ds/confirm", status_code=HTTP_200_OK, sync_to_thread=True)
    def confirm(
        self,
        payment_id: FromPath[str],
        principal: Inject[Principal],
        three_ds: Inject[ThreeDSChallenges],
        data: JSONBody[ChallengeIn],
    ) -> ChallengeOut:
        """Answer the challenge of one of your payments: ``approve`` (the order is then paid)
        or ``fail`` (declined, ``authentication_failed``); 409 ``no_action_pending`` if it
        waits on nothing (expired, answered)."""
        approve = data.outcome == "approve"
        payment = three_ds.confirm(payment_id, principal.customer_id, approve)
        return ChallengeOut(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            status=payment.status,
            decline_code=payment.decline_code,
        )


ASYNC_ROUTES = [WebhookController, ThreeDSController]
# --- end async payments ---

# --- wallet and EMI (WALLET) ---


class WalletEntryOut(msgspec.Struct, kw_only=True):
    """One movement of the wallet (positive: money in)."""

    entry_id: str
    kind: str
    amount_minor: int
    balance_after: int
    reference: str
    created_at: datetime


class WalletOut(msgspec.Struct, kw_only=True):
    """GET /v1/wallet: the caller's balance in one currency and its latest movements."""

    customer_id: str
    currency: str
    balance_minor: int
    entries: list[WalletEntryOut]
    other_balances: dict[str, int]  # the caller's wallets in other currencies


class TopUpIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/wallet/top-ups: how much, and the card paying it (raw, or a saved token)."""

    amount_minor: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOPUP_MINOR)]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    card: CardIn | None = None
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class TopUpOut(msgspec.Struct, kw_only=True):
    """A top-up that went through: the wallet was credited."""

    topup_id: str
    status: str
    amount_minor: int
    currency: str
    balance_minor: int
    gateway: str
    gateway_reference: str | None


class EmiPlanOut(msgspec.Struct, kw_only=True):
    """One instalment plan of an amount."""

    months: int
    annual_rate_percent: str
    monthly_instalment_minor: int
    total_interest_minor: int
    total_minor: int


class EmiPlansOut(msgspec.Struct, kw_only=True):
    """GET /v1/payments/emi-plans: a bank's plans for an amount, before paying."""

    amount_minor: int
    currency: str
    region: str
    bank: str
    plans: list[EmiPlanOut]
    banks: list[str]  # every bank with EMI plans in the region


WalletKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Required. A unique key per top-up (e.g. a UUID): a retry with the same key "
        "and body gets the first answer and charges the card once.",
    ),
]


class WalletController(Controller):
    """/v1/wallet: the caller's stored-value wallet."""

    path = "/v1/wallet"
    tags = ("payments",)

    @get("/", sync_to_thread=True)
    def show(
        self,
        principal: Inject[Principal],
        wallet: Inject[WalletService],
        currency: Annotated[str | None, QueryParameter(pattern="^[A-Z]{3}$")] = None,
    ) -> WalletOut:
        """Your balance in ``currency`` (your region's by default) and its last 20 movements."""
        chosen = currency or REGION_CURRENCY.get(principal.region, "EUR")
        view = wallet.view(principal.customer_id, chosen)
        others = {
            b.currency: b.balance_minor
            for b in wallet.balances(principal.customer_id)
            if b.currency != chosen
        }
        return WalletOut(
            customer_id=principal.customer_id,
            currency=chosen,
            balance_minor=view.balance.balance_minor,
            entries=[
                WalletEntryOut(
                    entry_id=e.entry_id,
                    kind=e.kind,
                    amount_minor=e.amount_minor,
                    balance_after=e.balance_after,
                    reference=e.reference,
                    created_at=e.created_at,
                )
                for e in view.entries
            ],
            other_balances=others,
        )

    @post("/top-ups", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def top_up(
        self,
        data: JSONBody[TopUpIn],
        principal: Inject[Principal],
        wallet: Inject[WalletService],
        idempotency_key: WalletKey = None,
    ) -> TopUpOut:
        """Pay ``amount_minor`` into your wallet by card (authorised and captured once per
        Idempotency-Key); 402 ``topup_declined`` if the card declines, 422 for a bad amount,
        currency or card, 400 without a key, 503 if the processor timed out (retry with the
        same key)."""
        key = check_idempotency_key(idempotency_key)
        card = None
        if data.card is not None:
            card = Card(
                number=data.card.number,
                exp_month=data.card.exp_month,
                exp_year=data.card.exp_year,
                cvc=data.card.cvc,
                holder=data.card.holder or "Wallet top-up",
            )
        topup = wallet.top_up(
            principal.customer_id,
            data.amount_minor,
            data.currency,
            key,
            token=data.token,
            card=card,
        )
        balance = wallet.view(principal.customer_id, topup.currency, limit=0).balance
        return TopUpOut(
            topup_id=topup.topup_id,
            status=topup.status,
            amount_minor=topup.amount_minor,
            currency=topup.currency,
            balance_minor=balance.balance_minor,
            gateway=topup.gateway,
            gateway_reference=topup.gateway_reference,
        )


class EmiController(Controller):
    """/v1/payments/emi-plans: instalment plans shown before paying."""

    path = "/v1/payments/emi-plans"
    tags = ("payments",)

    @get("/", sync_to_thread=False)
    def plans(
        self,
        emi_rates: Inject[EmiRates],
        amount_minor: Annotated[int, QueryParameter(ge=1, le=10**12)],
        currency: Annotated[str, QueryParameter(pattern="^[A-Z]{3}$")],
        bank: Annotated[str, QueryParameter(pattern=r"^[a-z][a-z0-9_-]{1,31}$")],
    ) -> EmiPlansOut:
        """The bank's 3/6/12-month plans for the amount in the currency's region (monthly
        instalment, total interest, total); 422 ``unknown_emi_plan`` for a bank with none."""
        region = region_of_currency(currency)
        plans = emi_rates.plans(region, bank, amount_minor)
        return EmiPlansOut(
            amount_minor=amount_minor,
            currency=currency,
            region=region,
            bank=bank,
            plans=[
                EmiPlanOut(
                    months=plan.months,
                    annual_rate_percent=str(plan.annual_rate),
                    monthly_instalment_minor=plan.monthly_instalment_minor,
                    total_interest_minor=plan.total_interest_minor,
                    total_minor=plan.total_minor,
                )
                for plan in plans
            ],
            banks=emi_rates.banks(region),
        )


WALLET_ROUTES = [WalletController, EmiController]
# --- end wallet and EMI ---

# --- a payment, as its customer sees it ---


class EmiPlanOfPaymentOut(msgspec.Struct, kw_only=True):
    """The instalment plan a payment was made on."""

    months: int
    bank: str
    annual_rate_bp: int | None
    monthly_instalment_minor: int | None
    total_interest_minor: int | None


class PaymentOut(msgspec.Struct, kw_only=True):
    """A payment: its method, status and amounts (never the instrument)."""

    payment_id: str
    order_id: str
    method: str
    gateway: str
    status: str
    amount_minor: int
    currency: str
    captured_minor: int
    refunded_minor: int
    emi: EmiPlanOfPaymentOut | None
    created_at: datetime


class PaymentController(Controller):
    """/v1/payments/{payment_id}: one payment of the caller's (any, for an admin)."""

    path = "/v1/payments"
    tags = ("payments",)

    @get("/{payment_id:str}", sync_to_thread=True)
    def show(
        self,
        payment_id: FromPath[str],
        principal: Inject[Principal],
        payments: Inject[PaymentService],
    ) -> PaymentOut:
        """The payment with its EMI plan if it has one; 404 ``payment_not_found`` if unknown
        or another customer's."""
        payment = payments.find(payment_id)
        if payment is None or not (
            principal.is_admin or payment.customer_id == principal.customer_id
        ):
            raise PaymentNotFound(f"no payment {payment_id}")
        emi = None
        if payment.emi_months is not None and payment.emi_bank is not None:
            emi = EmiPlanOfPaymentOut(
                months=payment.emi_months,
                bank=payment.emi_bank,
                annual_rate_bp=payment.emi_rate_bp,
                monthly_instalment_minor=payment.emi_monthly_minor,
                total_interest_minor=payment.emi_interest_minor,
            )
        return PaymentOut(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            method=payment.method,
            gateway=payment.gateway,
            status=payment.status,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            captured_minor=payment.captured_minor,
            refunded_minor=payment.refunded_minor,
            emi=emi,
            created_at=payment.created_at,
        )


ROUTES: list[type[Controller]] = [*ASYNC_ROUTES, *WALLET_ROUTES, PaymentController]
