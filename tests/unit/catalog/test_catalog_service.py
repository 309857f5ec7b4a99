"""Catalog use cases on in-memory fakes: listing, browsing, offers, repricing, taxonomy."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.catalog import ProductCreated, ProductPriceChanged, ProductUpdated
from schemas.registry import REGISTRY
from tests.fakes import FakeUnitOfWork
from transactional.catalog.model import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_DESCRIPTION_LENGTH,
    MAX_IMAGES,
    MAX_PRICE_MINOR,
    MAX_TITLE_LENGTH,
    MAX_VARIANT_ATTRIBUTES,
    MAX_VARIANTS,
    Category,
    CategoryExists,
    DuplicateSku,
    NotProductOwner,
    Product,
    ProductQuery,
    SkuOffer,
    Variant,
    shard_of,
)
from transactional.catalog.service import CatalogService, NewProduct, NewVariant, ProductChanges
from transactional.sellers.model import NotASeller, SellerNotApproved
from transactional.shared.errors import InvalidRequest, NotFound
from transactional.shared.outbox import Outbox

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
TAXONOMY = [
    Category("cat_electronics", "Electronics", "electronics"),
    Category("cat_electronics_phones", "Phones", "phones", "cat_electronics"),
    Category("cat_books", "Books", "books"),
]


class FakeCatalog:
    def __init__(self) -> None:
        self.category_rows = {c.category_id: c for c in TAXONOMY}
        self.products: dict[str, Product] = {}
        self.offer_calls = 0

    def categories(self) -> list[Category]:
        return list(self.category_rows.values())

    def add_category(self, category: Category) -> None:
        if category.category_id in self.category_rows:
            raise CategoryExists(category.name)
        self.category_rows[category.category_id] = category

    def add_product(self, product: Product) -> None:
        taken = sorted(
            v.sku for p in self.products.values() for v in p.variants if product.variant(v.sku)
        )
        if taken:
            raise DuplicateSku("taken", skus=taken)
        self.products[product.product_id] = replace(
            product, variants=[replace(v, prices=dict(v.prices)) for v in product.variants]
        )

    def get(self, product_id: str, *, for_update: bool = False) -> Product | None:
        stored = self.products.get(product_id)
        if stored is None:
            return None
        return replace(
            stored, variants=[replace(v, prices=dict(v.prices)) for v in stored.variants]
        )

    def update_product(self, product: Product) -> None:
        self.products[product.product_id] = product

    def find(self, query: ProductQuery) -> tuple[list[Product], int]:
        found = [
            p
            for p in sorted(self.products.values(), key=lambda p: p.created_at, reverse=True)
            if p.status == "active"
            and (query.category_ids is None or p.category_id in query.category_ids)
            and (query.seller_id is None or p.seller_id == query.seller_id)
        ]
        return found[query.offset : query.offset + query.limit], len(found)

    def offers(self, skus: Collection[str]) -> dict[str, SkuOffer]:
        self.offer_calls += 1
        return {
            v.sku: SkuOffer(v.sku, p.product_id, p.seller_id, p.title, p.status, dict(v.prices))
            for p in self.products.values()
            for v in p.variants
            if v.sku in skus
        }


class FakeCatalogUow(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.catalog = FakeCatalog()


@dataclass
class FakeSeller:
    seller_id: str
    region: str


class FakeGate:
    """Customers cus_eu / cus_us are approved sellers; cus_pending is not; others no seller."""

    def require_approved_seller(self, customer_id: str) -> FakeSeller:
        if customer_id == "cus_pending":
            raise SellerNotApproved("pending")
        if customer_id not in ("cus_eu", "cus_us"):
            raise NotASeller("no seller")
        return FakeSeller("sel_" + customer_id[4:], customer_id[4:])


def make_service(shards: int = 16) -> tuple[CatalogService, FakeCatalogUow]:
    uow = FakeCatalogUow()
    clock = iter(NOW + timedelta(seconds=i) for i in range(1000))
    service = CatalogService(lambda: uow, FakeGate(), shards=shards, clock=lambda: next(clock))
    return service, uow


def phone(**overrides: object) -> NewProduct:
    fields: dict[str, object] = {
        "title": "  Pocket Phone 5 ",
        "category_id": "cat_electronics_phones",
        "variants": [
            NewVariant("PP5-BLK", {"USD": 49900, "EUR": 45900}, {"colour": "black"}),
            NewVariant("PP5-WHT", {"EUR": 45900, "USD": 49900}, {"colour": "white"}),
        ],
        "brand": "Pocket",
        "images": ["https://cdn.example.com/pp5.jpg"],
    }
    fields.update(overrides)
    return NewProduct(**fields)  # type: ignore[arg-type]


def test_create_product_stores_it_with_a_shard_id_and_emits_product_created() -> None:
    service, uow = make_service(shards=4)
    product = service.create_product("cus_eu", phone())
    assert product.title == "Pocket Phone 5" and product.seller_id == "sel_eu"
    assert product.shard == shard_of(product.product_id) < 4
    assert product.currency == "EUR"  # the seller's region currency, though USD is listed first
    assert uow.catalog.products[product.product_id].variants[0].sku == "PP5-BLK"
    assert uow.event_types() == ["product.created"]
    envelope = uow.committed[0]
    assert envelope.aggregate_id == product.product_id and envelope.region == "eu"
    created = REGISTRY.payload_as(envelope, ProductCreated)
    assert created.category_path == ["Electronics", "Phones"]
    assert (created.price.amount_minor, created.price.currency) == (45900, "EUR")
    assert [(v.sku, v.price.amount_minor) for v in created.variants] == [
        ("PP5-BLK", 45900),
        ("PP5-WHT", 45900),
    ]
    assert created.product_version == 1 and created.status == "active"


def test_a_seller_outside_the_product_currencies_quotes_the_first_listed() -> None:
    service, uow = make_service()
    product = service.create_product(
        "cus_us", phone(variants=[NewVariant("GB-1", {"GBP": 999, "EUR": 1099})])
    )
    assert product.currency == "GBP"
    assert REGISTRY.payload_as(uow.committed[0], ProductCreated).price.currency == "GBP"


def test_only_approved_sellers_list() -> None:
    service, uow = make_service()
    with pytest.raises(NotASeller):
        service.create_product("cus_nobody", phone())
    with pytest.raises(SellerNotApproved):
        service.create_product("cus_pending", phone())
    assert uow.catalog.products == {} and uow.committed == []


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"title": "   "}, "invalid_title"),
        ({"title": "x" * 501}, "invalid_title"),
        ({"category_id": "cat_nope"}, "unknown_category"),
        ({"variants": []}, "variants_required"),
        ({"variants": [NewVariant("A", {"EUR": -1})]}, "invalid_price"),
        ({"variants": [NewVariant("A", {"JPY": 100})]}, "unsupported_currency"),
        ({"images": ["not a url"]}, "invalid_image_url"),
        ({"attributes": {"k" * 201: "v"}}, "invalid_attributes"),
        ({"description": "d" * 20_001}, "invalid_description"),
    ],
)
def test_invalid_products_are_refused_without_side_effects(
    overrides: dict[str, object], code: str
) -> None:
    service, uow = make_service()
    with pytest.raises(InvalidRequest) as refused:
        service.create_product("cus_eu", phone(**overrides))
    assert refused.value.code == code
    assert uow.catalog.products == {} and uow.committed == []


def test_skus_are_globally_unique() -> None:
    service, uow = make_service()
    service.create_product("cus_eu", phone())
    with pytest.raises(DuplicateSku) as duplicate:
        service.create_product("cus_us", phone(variants=[NewVariant("PP5-WHT", {"USD": 1})]))
    assert duplicate.value.extra == {"skus": ["PP5-WHT"]}
    assert uow.event_types() == ["product.created"]


def test_browse_filters_by_category_subtree_and_seller_and_pages() -> None:
    service, _ = make_service()
    phones = [
        service.create_product("cus_eu", phone(variants=[NewVariant(f"P{i}", {"EUR": 100})]))
        for i in range(3)
    ]
    book = service.create_product(
        "cus_us",
        phone(category_id="cat_books", variants=[NewVariant("BOOK", {"USD": 1500})]),
    )
    first = service.products(category_id="cat_electronics", page=1, page_size=2)
    assert [p.product_id for p in first.items] == [phones[2].product_id, phones[1].product_id]
    assert first.total == 3
    second = service.products(category_id="cat_electronics", page=2, page_size=2)
    assert [p.product_id for p in second.items] == [phones[0].product_id]
    assert [p.product_id for p in service.products(seller_id="sel_us").items] == [book.product_id]
    assert service.products(category_id="cat_books", seller_id="sel_eu").total == 0
    with pytest.raises(InvalidRequest) as unknown:
        service.products(category_id="cat_nope")
    assert unknown.value.code == "unknown_category"
    for page, size in [(0, 10), (1, 0), (1, 101)]:
        with pytest.raises(InvalidRequest):
            service.products(page=page, page_size=size)


def test_offers_answer_existing_skus_in_one_lookup() -> None:
    service, uow = make_service()
    product = service.create_product("cus_eu", phone())
    offers = service.offers(["PP5-BLK", "PP5-WHT", "GHOST"])
    assert set(offers) == {"PP5-BLK", "PP5-WHT"}
    assert offers["PP5-BLK"] == SkuOffer(
        "PP5-BLK",
        product.product_id,
        "sel_eu",
        "Pocket Phone 5",
        "active",
        {"USD": 49900, "EUR": 45900},
    )
    assert uow.catalog.offer_calls == 1
    assert service.offers([]) == {} and uow.catalog.offer_calls == 1


def test_product_not_found() -> None:
    service, _ = make_service()
    with pytest.raises(NotFound) as missing:
        service.product("prd_00_" + "0" * 32)
    assert missing.value.code == "product_not_found"


def test_owner_updates_title_and_prices_with_events() -> None:
    service, uow = make_service()
    product = service.create_product("cus_eu", phone())
    updated = service.update_product(
        "cus_eu",
        product.product_id,
        ProductChanges(title="Pocket Phone 5 Pro", prices={"PP5-BLK": {"EUR": 42900}}),
    )
    assert updated.version == 2 and updated.title == "Pocket Phone 5 Pro"
    assert service.offers(["PP5-BLK"])["PP5-BLK"].prices == {"USD": 49900, "EUR": 42900}
    assert uow.event_types() == ["product.created", "product.updated", "product.price_changed"]
    snapshot = REGISTRY.payload_as(uow.committed[1], ProductUpdated)
    assert snapshot.changed_fields == ["title", "variants"] and snapshot.product_version == 2
    assert snapshot.price.amount_minor == 42900
    change = REGISTRY.payload_as(uow.committed[2], ProductPriceChanged)
    assert (change.sku, change.old_price.amount_minor, change.new_price.amount_minor) == (
        "PP5-BLK",
        45900,
        42900,
    )

    # Nothing changed: no new version, no event.
    same = service.update_product(
        "cus_eu", product.product_id, ProductChanges(title="Pocket Phone 5 Pro")
    )
    assert same.version == 2 and len(uow.committed) == 3


def test_only_the_owner_updates_and_bad_prices_change_nothing() -> None:
    service, uow = make_service()
    product = service.create_product("cus_eu", phone())
    with pytest.raises(NotProductOwner):
        service.update_product("cus_us", product.product_id, ProductChanges(title="Mine now"))
    with pytest.raises(NotFound):
        service.update_product("cus_eu", "prd_00_" + "0" * 32, ProductChanges(title="x"))
    with pytest.raises(InvalidRequest):
        service.update_product(
            "cus_eu",
            product.product_id,
            ProductChanges(title="New", prices={"PP5-BLK": {"EUR": 0}}),
        )
    stored = service.product(product.product_id)
    assert stored.title == "Pocket Phone 5" and stored.version == 1
    assert stored.variants[0].prices["EUR"] == 45900
    assert uow.event_types() == ["product.created"]


def test_categories_tree_and_admin_extension() -> None:
    service, _ = make_service()
    added = service.add_category("Smart Watches", "cat_electronics")
    assert added.category_id == "cat_electronics_smart_watches"
    tree = service.categories()
    electronics = next(n for n in tree if n.category.category_id == "cat_electronics")
    assert [c.category.name for c in electronics.children] == ["Phones", "Smart Watches"]
    with pytest.raises(CategoryExists):
        service.add_category("smart   watches", "cat_electronics")
    with pytest.raises(InvalidRequest) as unknown:
        service.add_category("Orphans", "cat_nope")
    assert unknown.value.code == "unknown_category"
    assert service.add_category("Garden", None).parent_id is None


def test_variant_prices_are_copied_not_shared() -> None:
    prices = {"EUR": 100}
    service, _ = make_service()
    product = service.create_product("cus_eu", phone(variants=[NewVariant("C1", prices)]))
    prices["EUR"] = 1
    assert service.product(product.product_id).variants == [Variant("C1", {"EUR": 100}, {})]


def test_the_largest_product_allowed_still_fits_in_one_event() -> None:
    # Every bound at its maximum: the outbox must accept the snapshot, never 500 on it.
    long = "x" * MAX_ATTRIBUTE_LENGTH
    service, uow = make_service()
    service.create_product(
        "cus_eu",
        phone(
            title="t" * MAX_TITLE_LENGTH,
            description="d" * MAX_DESCRIPTION_LENGTH,
            attributes={f"{i:0{MAX_ATTRIBUTE_LENGTH}d}": long for i in range(MAX_ATTRIBUTES)},
            images=[f"https://cdn.example.com/{'i' * 1900}{n}" for n in range(MAX_IMAGES)],
            variants=[
                NewVariant(
                    f"{n:064d}",
                    {c: MAX_PRICE_MINOR for c in ("EUR", "USD", "GBP", "INR")},
                    {f"{i:0{MAX_ATTRIBUTE_LENGTH}d}": long for i in range(MAX_VARIANT_ATTRIBUTES)},
                )
                for n in range(MAX_VARIANTS)
            ],
        ),
    )
    [row] = Outbox(regions=["eu"]).rows(uow.committed)
    assert 200_000 < len(row["value"]) < 900_000
