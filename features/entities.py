"""The entities Souk's features are keyed by: one Feast ``Entity`` per business key."""

from __future__ import annotations

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A shopper's account (cus_…).",
)
payment_instrument = Entity(
    name="payment_instrument",
    join_keys=["instrument_id"],
    value_type=ValueType.STRING,
    description="A tokenized card or other payment instrument.",
)
device = Entity(
    name="device",
    join_keys=["device_id"],
    value_type=ValueType.STRING,
    description="The device an order was placed from.",
)
ip = Entity(
    name="ip",
    join_keys=["client_ip"],
    value_type=ValueType.STRING,
    description="The client IP address an order was placed from.",
)
product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A catalog product (prd_…).",
)
seller = Entity(
    name="seller",
    join_keys=["seller_id"],
    value_type=ValueType.STRING,
    description="A marketplace seller (sel_…).",
)

#: Every entity of the repository, in registration order.
ENTITIES: tuple[Entity, ...] = (customer, payment_instrument, device, ip, product, seller)
