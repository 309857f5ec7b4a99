"""Every setting of Souk in one typed place (env prefix ``SOUK_``, ``.env`` supported).

A URL left unset means "start or use the embedded default"; a URL that is set means
"use that real server". The code path is the same either way.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Souk's configuration, read from the environment and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="SOUK_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".souk"), description="Local state: data dirs, pids, logs.")
    region: str = Field(default="eu", description="The region this process serves.")
    regions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["eu", "us", "in"])

    database_url: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    search_url: str | None = None
    analytics_url: str | None = None
    lake_uri: str | None = None
    object_store_url: str | None = None
    flink_url: str | None = None
    spark_master: str | None = None
    # Batch jobs (jobs/): Spark's driver memory and shuffle partitions (small data locally).
    spark_driver_memory: str = Field(default="1g", pattern=r"^\d+[kmgt]?$")
    spark_shuffle_partitions: int = Field(default=4, ge=1)
    # Local sessions with the C1 JIT only: faster for short jobs on small data (tests, demo).
    spark_quick_jvm: bool = False

    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Tansu holds a group join for half the session timeout: keep it short locally.
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    # Tansu answers a fetch only when this wait runs out, even with data ready (Kafka answers
    # at once), so it bounds delivery latency locally; raise it to 500 against a real cluster.
    kafka_fetch_wait_max_ms: int = Field(default=50, ge=1)
    # Below Kafka's default 1 MB message.max.bytes, leaving room for batch overhead and the
    # headers a dead letter adds; the outbox refuses larger events (value+key+headers).
    kafka_max_message_bytes: int = Field(default=900_000, ge=1024)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=0.05, gt=0)
    # No delivery report for this long: restart the producer (a restarted broker forgets it).
    relay_stall_timeout_s: float = Field(default=30.0, gt=0)
    outbox_retention_hours: float = Field(default=168, gt=0, description="Keep published rows.")
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_s: float = Field(default=0.05, ge=0)

    http_host: str = Field(default="127.0.0.1", description="Where `souk serve` listens.")
    http_port: int = Field(default=8000, ge=0, le=65535)
    http_workers: int = Field(default=1, ge=1, description="Server processes of `souk serve`.")
    # Where a checkout comes from (fraud scoring). X-Forwarded-For is believed only from these
    # peers (CIDRs, comma-separated); the client is the last address before them.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # The region of a client IP: "region=CIDR" pairs, comma-separated, a region may repeat.
    ip_regions: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=lambda: {
            "eu": ["10.1.0.0/16"],
            "us": ["10.2.0.0/16"],
            "in": ["10.3.0.0/16"],
        }
    )
    # Signing key of bearer tokens. The default is for a laptop only: set it in production.
    jwt_secret: str = Field(default="souk-local-development-secret-change-me", min_length=32)
    token_ttl_s: int = Field(default=3600, ge=60)
    # argon2id cost; OWASP's baseline by default, lower it only for simulations and tests.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=1024)
    # A Redis that accepts but never answers must not hold PostgreSQL transactions open.
    redis_timeout_s: float = Field(default=2.0, gt=0)
    catalog_shards: int = Field(default=16, ge=1, le=256, description="Product-id prefixes.")
    cart_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, description="Idle carts expire.")
    # A checkout holds stock this long; a crashed or abandoned one gives it back after.
    reservation_ttl_s: int = Field(default=900, ge=1)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1, description="Idempotency-Key life.")
    payment_gateway: str = Field(default="sandbox", description="Card processor adapter.")
    # The sandbox plays a real processor's round trip on every call that would leave the
    # machine (authorize, capture, void, refund, lookup), e.g. 300 for a card network.
    sandbox_latency_ms: float = Field(default=0.0, ge=0)
    # Request handlers are synchronous, so a checkout waiting on the processor holds a worker
    # thread (not a CPU). Unset: enough for `checkout_peak_per_s` checkouts/s at the
    # processor's latency (2 calls each), never under 64. See `worker_threads`.
    http_threads: int | None = Field(default=None, ge=1)
    checkout_peak_per_s: float = Field(default=250.0, gt=0)
    # A saga step older than this with no progress is taken over by recovery.
    # Longer than the slowest step (a gateway timeout plus the pool wait), or recovery would
    # take over sagas that are still running.
    saga_recovery_after_s: float = Field(default=120.0, gt=0)

    # --- streaming jobs (pipelines/) ---
    # Where checkpoints go: a URI in production (s3://, hdfs://); unset = SOUK_HOME/flink.
    flink_checkpoint_uri: str | None = None
    flink_checkpoint_interval_s: float = Field(default=3.0, gt=0)
    flink_parallelism: int = Field(default=1, ge=1)
    # "thread" runs Python functions inside the JVM (~4x faster); "process" in Beam workers.
    flink_python_mode: str = Field(default="thread", pattern="^(thread|process)$")
    # A failing job restarts this many times (this far apart), then fails for good.
    flink_restart_attempts: int = Field(default=3, ge=0)
    flink_restart_delay_s: float = Field(default=2.0, ge=0)
    # Event time: how far out of order events may arrive, and how late after that a window
    # still takes them (later ones are dropped and counted).
    stream_out_of_orderness_s: float = Field(default=5.0, ge=0)
    stream_allowed_lateness_s: float = Field(default=60.0, ge=0)
    # A source partition without events this long no longer holds the watermark back.
    stream_idle_timeout_s: float = Field(default=5.0, gt=0)
    trending_window_s: int = Field(default=3600, ge=1)
    trending_slide_s: int = Field(default=60, ge=1)
    trending_top_n: int = Field(default=10, ge=1, le=1000)
    trending_weight_view: int = Field(default=1, ge=0)
    trending_weight_cart: int = Field(default=3, ge=0)
    trending_weight_purchase: int = Field(default=5, ge=0)

    # --- analytics (jobs/analytics, serving/analytics) ---
    # ClickHouse database of the analytics tables (chdb locally, SOUK_ANALYTICS_URL in prod).
    analytics_database: str = Field(default="souk", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    analytics_group: str = Field(default="souk-analytics", min_length=1)  # the loader's group
    # Events per loader batch (one INSERT per table, one offsets commit) and the wait to fill it.
    # Each chdb INSERT costs ~10-20 ms of CPU whatever its size: big batches when catching up.
    analytics_batch_max: int = Field(default=50_000, ge=1)
    analytics_batch_wait_s: float = Field(default=1.0, gt=0)
    # Loopback port of the loader's query endpoint (0: any free port, recorded in SOUK_HOME).
    analytics_endpoint_port: int = Field(default=0, ge=0, le=65535)
    analytics_query_timeout_s: float = Field(default=30.0, gt=0)
    # Cross-currency totals: fx_rates (to EUR) unless this JSON file of rates to
    # analytics_base_currency is given; a currency without a rate leaves the total unset.
    analytics_base_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    analytics_rates_file: Path | None = None
    # --- end analytics ---

    # --- serving: search (serving/search) ---
    # Value of one unit of each currency in EUR ("EUR=1,USD=0.92" or JSON {"EUR":1,...}):
    # prices are shown, filtered and bucketed in the requested currency; money is never
    # summed across currencies without it.
    fx_rates: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "INR": 0.011}
    )
    # One word group per line; unset = the file shipped in serving/search.
    search_synonyms_file: Path | None = None
    search_max_page_size: int = Field(default=100, ge=1, le=1000)
    # The speller's vocabulary is re-read from the index this often (new words are still
    # recognised at once: known words are checked live).
    search_vocabulary_ttl_s: float = Field(default=30.0, gt=0)
    # Index versions kept per region for rollback (the current one is never deleted).
    search_keep_versions: int = Field(default=5, ge=2)
    # After a reindex swap, the indexer re-applies this much recent catalog/stock history.
    search_replay_window_s: float = Field(default=600.0, ge=0)
    # Run the event indexer inside `souk serve` (one writer per index: one process only).
    search_indexer: bool = True
    # --- end search ---

    # --- serving: autosuggest, rate limits, API docs (serving/suggest, serving/ratelimit) ---
    # A search counts half as much after this many days (0: counts never fade).
    suggest_half_life_days: float = Field(default=14.0, ge=0)
    # Every listed product can be suggested: its title weighs this plus its (decayed) views.
    suggest_product_weight: float = Field(default=1.0, ge=0)
    # The most searched queries per region held in memory (the long tail stays in Redis).
    suggest_max_queries: int = Field(default=50_000, ge=1)
    # How stale a process's suggestions may get before it reads the change log (seconds),
    # and how often the base index is rebuilt from the catalog when anything changed.
    suggest_refresh_s: float = Field(default=1.0, gt=0)
    suggest_rebuild_s: float = Field(default=600.0, gt=0)
    # Rate limits (GCRA in Redis). Off switch for benchmarks that measure the server alone.
    ratelimit_enabled: bool = True
    # Clients never limited: loopback is our own simulator, demo, benchmarks and tests (real
    # clients arrive through a proxy, whose X-Forwarded-For names them). CIDRs, comma-separated.
    ratelimit_exempt: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # Path prefixes of the read endpoints that are limited per client IP and per user.
    ratelimit_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "/v1/search",
            "/v1/suggest",
            "/v1/recommendations",
            "/v1/feed",
            "/v1/trending",
            "/v1/fraud/score",
        ]
    )
    # Requests per minute (bursts up to the same number) on those paths...
    ratelimit_ip_per_min: int = Field(default=600, ge=1)
    ratelimit_user_per_min: int = Field(default=300, ge=1)
    # ...and on sign-in and sign-up per client IP (password guessing, account farming).
    ratelimit_auth_per_min: int = Field(default=20, ge=1)
    # A slow Redis must not slow every request: past this the request passes (fail open).
    ratelimit_redis_timeout_s: float = Field(default=0.05, gt=0)

    @field_validator("ratelimit_exempt", "ratelimit_paths", mode="before")
    @classmethod
    def _split_ratelimit_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ratelimit_exempt")
    @classmethod
    def _check_ratelimit_exempt(cls, value: list[str]) -> list[str]:
        return [_cidr(cidr, "SOUK_RATELIMIT_EXEMPT") for cidr in value]

    # --- end suggest ---

    # --- serving: recommendations, personalization, trending (serving/recommendations) ---
    # How often serving stats a model's PROMOTED pointer (a stat; reload only on a change).
    recs_model_check_s: float = Field(default=5.0, gt=0)
    # Raw similar / bought-together lists per product and model version cached in Redis:
    # a version's lists never change, so the TTL only bounds memory.
    recs_cache_ttl_s: int = Field(default=3600, ge=1)
    # Product status, SKUs and PostgreSQL's stock (for SKUs without a Redis counter) cached
    # in-process: an unlisted or sold-out product drops out of lists this fast.
    recs_catalog_ttl_s: float = Field(default=10.0, ge=0)
    # The last N product ids per customer (views, carts, purchases) kept from the stream.
    recs_recent_events: int = Field(default=50, ge=1, le=1000)
    recs_recent_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    # recommendation_id -> model version, for attributing clicks (CTR per version).
    recs_served_ttl_s: int = Field(default=2 * 24 * 3600, ge=60)
    # Share of the personal affinity in re-ranked scores (feed, search): 0 = off.
    recs_rerank_weight: float = Field(default=0.3, ge=0, le=1)
    recs_consumer_group: str = Field(default="souk-recommendations", min_length=1)
    # --- end recommendations ---

    # --- serving: fraud scoring (serving/fraud) ---
    # Scores (0..1) from which a checkout's order is held for a person (review) or refused
    # with 402 fraud_suspected (decline). The defaults let one weak rule through (honest
    # shoppers trip velocity or new-account-high-value alone; see serving/fraud/model.py).
    fraud_review_threshold: float = Field(default=0.65, gt=0, le=1)
    fraud_decline_threshold: float = Field(default=0.9, gt=0, le=1)
    # Screen every checkout before authorization (false: the saga never asks the scorer).
    fraud_screen: bool = True
    # An order held for review nobody decides on within this is voided and cancelled.
    fraud_review_ttl_s: float = Field(default=3 * 24 * 3600.0, gt=0)
    # How often the promoted fraud model's pointer is checked (hot reload, a stat).
    fraud_model_check_s: float = Field(default=10.0, gt=0)
    # --- end fraud ---

    # money (issue 12): each block is edited only by its owner
    # --- payments ---
    # (ASYNC) A checkout waiting on the payer (3-D Secure challenge, UPI collect) this long is
    # voided and its order cancelled by recovery.
    payment_action_ttl_s: float = Field(default=900.0, gt=0)
    # Shared HMAC-SHA256 secrets per webhook provider, as JSON
    # (SOUK_PAYMENT_WEBHOOK_SECRETS='{"sandbox-upi": "..."}'); the default is the sandbox's.
    payment_webhook_secrets: dict[str, str] = Field(
        default_factory=lambda: {"sandbox-upi": "whsec_sandbox_upi_dev"}, repr=False
    )
    # A delivery signed further than this from now is refused (replayed captures).
    payment_webhook_tolerance_s: float = Field(default=300.0, gt=0)
    # The UPI sandbox's own deadline for a collect request nobody answers.
    upi_collect_ttl_s: float = Field(default=600.0, gt=0)
    # (WALLET) Which adapter serves each region and method: "<region>.<method>=<adapter>"
    # pairs, comma-separated ("*" matches any region). Adapters: the card gateway
    # (SOUK_PAYMENT_GATEWAY, "sandbox"), "wallet" and "split" (wallet + card); a method with no
    # route goes to the card gateway.
    payment_routes: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {
            "eu.card": "sandbox",
            "us.card": "sandbox",
            "in.card": "sandbox",
            "*.emi": "sandbox",
            "*.wallet": "wallet",
        }
    )
    # A gateway call that timed out is retried with the same idempotency key: at most this
    # many calls in all, waits doubling from initial (with as much jitter) up to max_wait,
    # no retry started after the deadline.
    payment_retry_attempts: int = Field(default=3, ge=1, le=10)
    payment_retry_initial_s: float = Field(default=0.05, ge=0)
    payment_retry_max_wait_s: float = Field(default=1.0, ge=0)
    payment_retry_deadline_s: float = Field(default=5.0, gt=0)
    # EMI plans per region and bank (annual rates); unset: transactional/payments/emi_rates.toml
    emi_rates_file: Path | None = None

    @field_validator("payment_routes", mode="before")
    @classmethod
    def _parse_payment_routes(cls, value: object) -> object:
        if isinstance(value, str):
            from transactional.payments.routing import parse_routes

            routes = parse_routes(value)
            return {f"{region}.{method}": name for (region, method), name in routes.items()}
        return value

    # --- end payments ---
    # --- vault ---
    # The card vault's key-encryption key (KEK): "file" (a keyring file, created 0600 on first
    # use), "settings" (SOUK_VAULT_KEK) or "aws-kms" (SOUK_VAULT_KMS_*; production).
    vault_kek_source: str = Field(default="file", pattern="^(file|settings|aws-kms)$")
    vault_key_file: Path | None = None  # unset: SOUK_HOME/vault/kek.json
    # "id=<base64 of 32 random bytes>" pairs, comma-separated, the last one current (never
    # shown in a repr). Rotate by appending a pair, then `souk vault rotate-key --no-new-key`.
    vault_kek: str | None = Field(default=None, repr=False)
    vault_kms_url: str | None = None  # a KMS endpoint (VPC endpoint, test server); unset: AWS's
    vault_kms_key_id: str = Field(default="alias/souk-card-vault", pattern=r"^alias/[\w/_-]+$")
    vault_kms_region: str = "eu-west-1"
    vault_rotation_batch: int = Field(default=500, ge=1)  # data keys re-wrapped per commit
    # --- end vault ---
    # --- ledger ---
    # The platform's commission per category or seller (TOML; see transactional/ledger/
    # commission.toml, the default when unset).
    ledger_commission_file: Path | None = None
    # `souk ledger payouts --book` pays a seller only what reaches this (minor units).
    ledger_payout_minimum_minor: int = Field(default=1, ge=1)
    # Book captures in the checkout's T2 (false only for a benchmark's baseline run: the
    # hot path's captures then go unbooked and `souk ledger check` fails).
    ledger_hot_path: bool = True
    # --- end ledger ---
    # --- billing ---
    # Tax at checkout from the rules file (false: lines untaxed, e.g. the bench's baseline).
    tax_enabled: bool = True
    tax_rules_file: Path | None = None  # unset: transactional/billing/tax_rules.toml
    # `souk serve` runs the invoicing consumer (order.paid → invoices, payment.refunded →
    # credit notes); false: invoices only on demand (`souk billing invoice`).
    invoices_enabled: bool = True
    # --- end billing ---
    # --- returns ---
    returns_windows_file: Path | None = None  # unset: transactional/returns/return_windows.toml
    # Receiving a return refunds it at once (false: an admin POSTs /v1/returns/{id}/refund).
    returns_auto_refund: bool = True
    # A received return whose stock move or refund a crash left unfinished is completed by
    # `souk serve` once it has been untouched this long.
    returns_retry_after_s: float = Field(default=60.0, gt=0)
    # --- end returns ---

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("region", "regions")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        if isinstance(value, str):
            return value.lower()
        if isinstance(value, list):
            return [str(item).lower() for item in value]
        return value

    @field_validator("fx_rates", mode="before")
    @classmethod
    def _parse_fx_rates(cls, value: object) -> object:
        # The same "key=value,..." form as the other mappings (what child processes get),
        # or JSON.
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return json.loads(value)
        rates: dict[str, str] = {}
        for part in (item.strip() for item in value.split(",")):
            currency, equals, rate = part.partition("=")
            if part and (not equals or not currency.strip() or not rate.strip()):
                raise ValueError(f"SOUK_FX_RATES: {part!r} is not CURRENCY=RATE")
            if part:
                rates[currency.strip().upper()] = rate.strip()
        return rates

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        return [_cidr(cidr, "SOUK_TRUSTED_PROXIES") for cidr in value]

    @field_validator("ip_regions", mode="before")
    @classmethod
    def _split_ip_regions(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        table: dict[str, list[str]] = {}
        for part in (item.strip() for item in value.split(",")):
            if not part:
                continue
            region, equals, cidr = part.partition("=")
            if not equals or not region.strip() or not cidr.strip():
                raise ValueError(f"SOUK_IP_REGIONS: {part!r} is not region=CIDR")
            table.setdefault(region.strip().lower(), []).append(cidr.strip())
        return table

    @field_validator("ip_regions")
    @classmethod
    def _check_ip_regions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        table: dict[str, list[str]] = {}
        for region, cidrs in value.items():
            if not _REGION_CODE.fullmatch(region):
                raise ValueError(f"SOUK_IP_REGIONS: {region!r} is not a region code (e.g. eu)")
            for cidr in (_cidr(c, "SOUK_IP_REGIONS") for c in cidrs):
                if seen.setdefault(cidr, region) != region:
                    raise ValueError(f"SOUK_IP_REGIONS: {cidr} is in {seen[cidr]} and {region}")
                table.setdefault(region, []).append(cidr)
        return table

    @property
    def worker_threads(self) -> int:
        """Threads for synchronous handlers: SOUK_HTTP_THREADS, or sized from the processor's
        latency (peak checkouts/s x 2 calls x latency, plus 64 for everything else)."""
        if self.http_threads is not None:
            return self.http_threads
        waiting = self.checkout_peak_per_s * 2 * self.sandbox_latency_ms / 1000
        return 64 + math.ceil(waiting)

    @property
    def state_dir(self) -> Path:
        """Absolute path of the local state folder."""
        return self.home.resolve()


_REGION_CODE = re.compile(r"[a-z][a-z0-9-]{1,15}")  # schemas.common.RegionCode


def _cidr(value: str, name: str) -> str:
    """A CIDR (or a bare address) in canonical form; ValueError naming the setting."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a CIDR (e.g. 10.0.0.0/8)") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
