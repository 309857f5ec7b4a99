"""HTTP helpers for integration tests: a live server, and shoppers/admins that sign in."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from transactional.shared.auth import ADMIN, JwtTokens, Principal


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Litestar) -> Iterator[str]:
    """Run ``app`` under uvicorn in a daemon thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def register(
    client: Any, *, region: str = "eu", currency: str = "EUR", **extra: Any
) -> dict[str, Any]:
    """Register a fresh customer and sign in; returns its id, email, password and auth headers."""
    email = f"shopper-{secrets.token_hex(6)}@example.com"
    password = "correct horse battery"
    response = client.post(
        "/v1/customers",
        json={
            "email": email,
            "password": password,
            "name": "Test Shopper",
            "region": region,
            "locale": "en",
            "currency": currency,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    token = client.post("/v1/auth/token", json={"email": email, "password": password})
    assert token.status_code == 200, token.text
    body = token.json()
    return {
        "customer_id": body["customer_id"],
        "email": email,
        "password": password,
        "headers": {"Authorization": f"Bearer {body['access_token']}"},
    }


def admin_headers(tokens: JwtTokens) -> dict[str, str]:
    """Authorization headers of an admin (as `souk token --admin` issues)."""
    token, _ = tokens.issue(Principal("admin", "eu", frozenset({ADMIN})))
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response | Any, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and code); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if code is not None:
        assert body.get("code") == code, body
    return body
