"""The API docs at ``/schema`` without the internet: their scripts and styles come from us.

Litestar's render plugins point at public CDNs by default, so the page is blank offline. The
pinned ``fastapi-offline`` package ships the Redoc and Swagger UI bundles as plain files (its
Python code is not used); they are served under ``/schema/assets/`` and the plugins point
there. Redoc is the page at ``/schema`` (as before), Swagger UI at ``/schema/swagger``, the
document at ``/schema/openapi.json`` and ``.yaml``. Pages whose assets no installed package
ships (Stoplight Elements, RapiDoc, Scalar) are not offered.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/schema/assets"
ASSET_FILES = ("redoc.standalone.js", "swagger-ui-bundle.js", "swagger-ui.css")


def assets_directory() -> Path:
    """Where the installed package keeps the bundles."""
    return Path(str(files("fastapi_offline") / "static"))


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI from our assets. Litestar's page also loads the standalone preset, which
    its own script never uses (it reads ``SwaggerUIBundle.SwaggerUIStandalonePreset``, which
    neither file defines: the preset file sets a global of its own), and which the package
    does not ship: its tag is left out."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page, without the unused preset script."""
        page = super().render(request, openapi_schema)
        tag = f'<script src="{self.standalone_preset_js_url}" crossorigin></script>'
        return page.replace(tag.encode(), b"")


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """The docs pages and documents, every asset served by the app itself."""
    return [
        RedocRenderPlugin(
            path=["/", "/redoc"],
            js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            google_fonts=False,
            favicon="",
        ),
        OfflineSwaggerRenderPlugin(
            path="/swagger",
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon="",
        ),
        JsonRenderPlugin(),
        YamlRenderPlugin(),
    ]


def assets_router() -> Router:
    """``/schema/assets/<file>``: the bundles, cacheable for a day, not in the document."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[assets_directory()],
        include_in_schema=False,
        cache_control=None,
        name="docs-assets",
    )
