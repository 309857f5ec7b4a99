"""The two servers of `make bench-serving`, each in its own process, on the same uvicorn setup.

    python -m bench.serving_server souk --port P       # what `souk serve` serves, over
                                                       # build_services (settings from SOUK_*)
    python -m bench.serving_server baseline --port P   # a bare Litestar app: GET /ping

Both run uvicorn with the options `souk serve` uses (uvloop and httptools when installed, no
access log, no proxy headers). The Souk server skips `souk serve`'s background threads
(relay, consumers, indexer, housekeeping): the benchmark measures the request path on data
that does not change, and those threads would only add noise on 2 cores.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from litestar import Litestar, get

#: uvicorn's settings shared by both servers: the comparison is the app, not the server.
UVICORN_OPTIONS: dict[str, Any] = {
    "host": "127.0.0.1",
    "log_level": "warning",
    "access_log": False,
    "proxy_headers": False,
    "loop": "auto",  # uvloop when installed, as `souk serve`
    "http": "auto",  # httptools when installed, as `souk serve`
}


@get("/ping", sync_to_thread=False)
def ping() -> dict[str, str]:
    """A small JSON answer from the event loop."""
    return {"status": "ok", "service": "baseline"}


@get("/ping-thread", sync_to_thread=True)
def ping_thread() -> dict[str, str]:
    """The same answer from a handler thread (as the serving endpoints that do I/O run)."""
    return {"status": "ok", "service": "baseline"}


def baseline_app() -> Litestar:
    """The bare Litestar app the serving endpoints are compared with."""
    return Litestar(route_handlers=[ping, ping_thread], openapi_config=None)


def souk_app() -> Litestar:
    """The app `souk serve` serves (every domain), its indexes built before the first request."""
    from serving.app import create_app
    from souk.services import build_services
    from souk.settings import Settings
    from souk.stack.endpoints import resolve_url

    settings = Settings()
    services = build_services(
        settings,
        database_url=resolve_url(settings, "postgres"),
        redis_url=resolve_url(settings, "redis"),
    )
    services["suggest"].warm()  # `souk serve` warms it in a thread; here before listening
    return create_app(services)


def main() -> None:
    """Serve the chosen app until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("app", choices=["souk", "baseline"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = souk_app() if args.app == "souk" else baseline_app()
    uvicorn.run(app, port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
