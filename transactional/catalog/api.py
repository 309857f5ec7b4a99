"""HTTP controllers of the catalog slice: products, the category tree, taxonomy admin."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from transactional.catalog.dto import (
    CategoryOut,
    CategoryTreeOut,
    CreateProduct,
    NewCategoryIn,
    ProductOut,
    ProductPageOut,
    UpdateProduct,
)
from transactional.catalog.service import (
    MAX_PAGE_SIZE,
    CatalogService,
    NewProduct,
    NewVariant,
    ProductChanges,
)
from transactional.shared.auth import Principal
from transactional.shared.http import Inject


class ProductController(Controller):
    """/v1/products: listing (approved sellers) and browsing (everyone)."""

    path = "/v1/products"
    tags = ("catalog",)

    @post("/", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create(
        self,
        data: JSONBody[CreateProduct],
        principal: Inject[Principal],
        catalog: Inject[CatalogService],
    ) -> ProductOut:
        """List a product with its SKUs; the caller must own an approved seller."""
        product = catalog.create_product(
            principal.customer_id,
            NewProduct(
                title=data.title,
                category_id=data.category_id,
                variants=[
                    NewVariant(sku=v.sku, prices=v.prices, attributes=v.attributes)
                    for v in data.variants
                ],
                description=data.description,
                brand=data.brand,
                attributes=data.attributes,
                images=data.images,
            ),
        )
        return ProductOut.of(product)

    @get("/", sync_to_thread=True)
    def browse(
        self,
        catalog: Inject[CatalogService],
        category: Annotated[str | None, QueryParameter(max_length=128)] = None,
        seller: Annotated[str | None, QueryParameter(max_length=128)] = None,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 20,
    ) -> ProductPageOut:
        """Active products, newest first, by category (with its subcategories) and seller."""
        found = catalog.products(
            category_id=category, seller_id=seller, page=page, page_size=page_size
        )
        pages = -(-found.total // found.page_size)
        return ProductPageOut(
            items=[ProductOut.of(p) for p in found.items],
            page=found.page,
            page_size=found.page_size,
            total=found.total,
            pages=pages,
            has_next=found.page < pages,
        )

    @get("/{product_id:str}", sync_to_thread=True)
    def read(self, product_id: FromPath[str], catalog: Inject[CatalogService]) -> ProductOut:
        """A product with its SKUs and prices."""
        return ProductOut.of(catalog.product(product_id))

    @patch("/{product_id:str}", sync_to_thread=True)
    def update(
        self,
        product_id: FromPath[str],
        data: JSONBody[UpdateProduct],
        principal: Inject[Principal],
        catalog: Inject[CatalogService],
    ) -> ProductOut:
        """Change the title, description, brand or prices of the caller's own product."""
        product = catalog.update_product(
            principal.customer_id,
            product_id,
            ProductChanges(
                title=data.title,
                description=data.description,
                brand=data.brand,
                prices=data.prices,
            ),
        )
        return ProductOut.of(product)


class CategoryController(Controller):
    """/v1/categories: the taxonomy the storefront navigates."""

    path = "/v1/categories"
    tags = ("catalog",)

    @get("/", sync_to_thread=True)
    def tree(self, catalog: Inject[CatalogService]) -> list[CategoryTreeOut]:
        """Every category as a tree: roots with their children."""
        return [CategoryTreeOut.of(node) for node in catalog.categories()]


class AdminCategoryController(Controller):
    """/v1/admin/categories: extending the taxonomy (admin tokens only)."""

    path = "/v1/admin/categories"
    tags = ("admin",)

    @post("/", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def add(
        self,
        data: JSONBody[NewCategoryIn],
        principal: Inject[Principal],
        catalog: Inject[CatalogService],
    ) -> CategoryOut:
        """Add a category under ``parent_id`` (a root when null)."""
        principal.require_admin()
        return CategoryOut.of(catalog.add_category(data.name, data.parent_id))


ROUTES = [ProductController, CategoryController, AdminCategoryController]
