"""Streaming fraud feature views, each fed by a push source (the PyFlink fraud-signals job).

Every view has a push source ``<view>_push`` backed by a parquet ``FileSource``
(``offline/<view>.parquet``, relative to the repository folder ``SOUK_HOME/features``: see
``features.store``) whose timestamp field is ``event_timestamp``. Counts are INT64, flags are
INT64 0/1, money is in minor units.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64, String

from features.entities import customer, device, ip, payment_instrument

#: How long a pushed value stays servable without a newer one.
SIGNALS_TTL = timedelta(days=2)
#: The event-time column of every push source and its batch source.
TIMESTAMP_FIELD = "event_timestamp"
#: Folder of the offline parquet files, relative to the repository folder.
OFFLINE_DIR = "offline"


def push_source_name(view: str) -> str:
    """The push source of a view: ``<view>_push``."""
    return f"{view}_push"


def _signals_view(
    name: str, entity: Entity, features: list[Field], description: str
) -> FeatureView:
    """A streaming feature view of ``entity`` fed by the push source ``<name>_push``."""
    batch = FileSource(
        name=f"{name}_offline",
        path=f"{OFFLINE_DIR}/{name}.parquet",
        timestamp_field=TIMESTAMP_FIELD,
        description=f"Offline history of {name}.",
    )
    push = PushSource(name=push_source_name(name), batch_source=batch, description=description)
    return FeatureView(
        name=name,
        entities=[entity],
        ttl=SIGNALS_TTL,
        schema=[Field(name=entity.join_key, dtype=String), *features],
        source=push,
        online=True,
        description=description,
        tags={"domain": "fraud"},
    )


customer_fraud_signals = _signals_view(
    "customer_fraud_signals",
    customer,
    [
        Field(name="orders_1m", dtype=Int64, description="Orders in the last minute."),
        Field(name="orders_1h", dtype=Int64, description="Orders in the last hour."),
        Field(name="orders_24h", dtype=Int64, description="Orders in the last 24 hours."),
        Field(name="amount_mean_minor", dtype=Float64, description="Mean order amount (minor)."),
        Field(name="amount_std_minor", dtype=Float64, description="Std dev of order amounts."),
        Field(name="amount_zscore", dtype=Float64, description="Z-score of the last order."),
        Field(
            name="ship_region_mismatch",
            dtype=Int64,
            description="1 if the last order shipped outside the account's region.",
        ),
        Field(
            name="ip_region_mismatch",
            dtype=Int64,
            description="1 if the last order's IP region differs from the account's.",
        ),
        Field(
            name="max_line_quantity",
            dtype=Int64,
            description="Largest quantity of one SKU in the last order.",
        ),
        Field(
            name="new_account_high_value",
            dtype=Int64,
            description="1 if a new account placed a high-value order.",
        ),
        Field(name="account_age_s", dtype=Int64, description="Account age in seconds."),
    ],
    "Per-customer order velocity, amount outliers and region mismatches.",
)

instrument_fraud_signals = _signals_view(
    "instrument_fraud_signals",
    payment_instrument,
    [
        Field(name="orders_1h", dtype=Int64, description="Orders in the last hour."),
        Field(name="orders_24h", dtype=Int64, description="Orders in the last 24 hours."),
        Field(
            name="distinct_customers_24h",
            dtype=Int64,
            description="Customers who used the instrument in the last 24 hours.",
        ),
    ],
    "Per-payment-instrument velocity and sharing across customers.",
)

device_fraud_signals = _signals_view(
    "device_fraud_signals",
    device,
    [
        Field(name="orders_1h", dtype=Int64, description="Orders in the last hour."),
        Field(name="orders_24h", dtype=Int64, description="Orders in the last 24 hours."),
        Field(
            name="distinct_instruments_24h",
            dtype=Int64,
            description="Payment instruments used from the device in the last 24 hours.",
        ),
        Field(
            name="distinct_customers_24h",
            dtype=Int64,
            description="Customers who ordered from the device in the last 24 hours.",
        ),
    ],
    "Per-device velocity and sharing across instruments and customers.",
)

ip_fraud_signals = _signals_view(
    "ip_fraud_signals",
    ip,
    [
        Field(name="orders_1h", dtype=Int64, description="Orders in the last hour."),
        Field(name="orders_24h", dtype=Int64, description="Orders in the last 24 hours."),
        Field(
            name="distinct_customers_24h",
            dtype=Int64,
            description="Customers who ordered from the IP in the last 24 hours.",
        ),
    ],
    "Per-client-IP velocity and sharing across customers.",
)

#: The streaming fraud views, by name (the order `online_signals` reads them in).
FRAUD_VIEWS: dict[str, FeatureView] = {
    view.name: view
    for view in (
        customer_fraud_signals,
        instrument_fraud_signals,
        device_fraud_signals,
        ip_fraud_signals,
    )
}
