"""The API docs pages load every script and style from the app itself (no CDN)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest

PAGES = ["/schema", "/schema/redoc", "/schema/swagger"]
TYPES = {".js": "javascript", ".css": "text/css"}


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.urls.append(str(named["src"]))
        if tag == "link" and named.get("href"):
            self.urls.append(str(named["href"]))


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_assets_are_served_by_the_app(client: Any, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    assert parser.urls, f"{page} loads no script: the test would prove nothing"
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from off-host"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        expected = TYPES[url[url.rfind(".") :]]
        assert expected in asset.headers["content-type"], (url, asset.headers["content-type"])


def test_the_documents_still_served(client: Any) -> None:
    assert client.get("/schema/openapi.json").json()["info"]["title"] == "Souk"
    assert client.get("/schema/openapi.yaml").status_code == 200
    assert "/schema/assets" not in "".join(client.get("/schema/openapi.json").json()["paths"])
