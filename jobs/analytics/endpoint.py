"""The loopback query endpoint: how everyone else reads the store the loader owns.

chdb lets one process own a data folder, and the loader is that process while the stack
runs. It therefore answers read-only queries over HTTP on 127.0.0.1 with the semantics of
ClickHouse's own HTTP interface (a subset): ``GET /ping`` → ``Ok.``; ``POST /`` with the SQL
as the body (or ``?query=``), ``?default_format=`` picking the output format (``ArrowStream``
for our client, ``JSONEachRow``, ``CSVWithNames``, ... for curl); an error is a 400 with the
engine's message, a write a 403. Its address is in ``SOUK_HOME/analytics/endpoint.json``
while it runs. ``EndpointStore`` is the client side: the same ``arrow(sql)`` as the other
adapters, so notebooks, the CLI and the API do not care who owns the data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pyarrow as pa

from jobs.analytics.chdb_store import ChdbStore, arrow_of
from jobs.analytics.port import AnalyticsError, AnalyticsUnavailable
from souk.settings import Settings

_READ = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)
_FORMAT = re.compile(r"^[A-Za-z0-9]{1,64}$")
_MAX_QUERY_BYTES = 1_000_000


def endpoint_file(settings: Settings) -> Path:
    """Where the running loader records its endpoint."""
    return settings.state_dir / "analytics" / "endpoint.json"


def running_endpoint(settings: Settings) -> str | None:
    """The URL of this home's running endpoint, or None (none, or its process died)."""
    try:
        info = json.loads(endpoint_file(settings).read_text())
        alive = psutil.Process(int(info["pid"])).status() != psutil.STATUS_ZOMBIE
        return str(info["url"]) if alive else None
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def is_read_only(sql: str) -> bool:
    """True for statements that only read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)."""
    return bool(_READ.match(sql)) and ";" not in sql.strip().rstrip(";")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # queries are not worth a log line each

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """``/ping``, or ``/?query=`` like ClickHouse."""
        if urlsplit(self.path).path in ("/ping", "/health"):
            self._send(200, b"Ok.\n")
            return
        self._answer(b"")

    def do_POST(self) -> None:
        """``POST /`` with the SQL as the body."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_QUERY_BYTES:
            self._send(413, b"query too large\n")
            return
        self._answer(self.rfile.read(length))

    def _answer(self, body: bytes) -> None:
        params = parse_qs(urlsplit(self.path).query)
        sql = (params.get("query", [""])[0] + " " + body.decode(errors="replace")).strip()
        fmt = params.get("default_format", ["TabSeparated"])[0]
        if not sql:
            self._send(400, b"empty query\n")
            return
        if not _FORMAT.match(fmt):
            self._send(400, b"bad default_format\n")
            return
        if not is_read_only(sql):
            self._send(403, b"read-only endpoint: one SELECT (or SHOW, DESCRIBE...) per request\n")
            return
        try:
            data = self.server.store.raw(sql, fmt)
        except AnalyticsError as error:
            self._send(400, f"{error}\n".encode())
            return
        kind = "application/octet-stream" if fmt.startswith(("Arrow", "Parquet")) else "text/plain"
        self._send(200, data, kind)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: ChdbStore) -> None:
        super().__init__(address, _Handler)
        self.store = store


class QueryEndpoint:
    """Serves ``store`` on loopback in a thread; records its URL for this home."""

    def __init__(self, store: ChdbStore, settings: Settings, port: int = 0) -> None:
        self.settings = settings
        self._server = _Server(("127.0.0.1", port), store)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="souk-analytics-endpoint", daemon=True
        )

    def start(self) -> QueryEndpoint:
        """Start serving and write the endpoint file (atomically)."""
        self._thread.start()
        path = endpoint_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": self.url, "pid": os.getpid()}))
        tmp.replace(path)
        return self

    def stop(self) -> None:
        """Stop serving; remove the endpoint file if it is still ours."""
        path = endpoint_file(self.settings)
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(path.read_text())["url"] == self.url:
                path.unlink()
        self._server.shutdown()
        self._server.server_close()


class EndpointStore:
    """AnalyticsReader over a loader's loopback endpoint."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout_s)

    def arrow(self, sql: str) -> pa.Table:
        """The result of one SELECT as an Arrow table."""
        try:
            response = self._client.post(
                self.url + "/", params={"default_format": "ArrowStream"}, content=sql.encode()
            )
        except httpx.HTTPError as error:
            raise AnalyticsUnavailable(f"the analytics endpoint {self.url}: {error}") from error
        if response.status_code in (400, 403, 413):
            raise AnalyticsError(response.text.strip())
        if response.status_code != 200:
            raise AnalyticsUnavailable(f"the analytics endpoint answered {response.status_code}")
        return arrow_of(response.content)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
