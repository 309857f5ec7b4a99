"""A minimal HTTP/1.1 keep-alive client for load generation: a socket, bytes, a status code.

httpx costs ~2 ms of CPU per request (its models, headers, pools), enough to make the load
generator the bottleneck of a loopback benchmark. This client writes the request bytes
itself and reads the response by ``Content-Length``: ~0.1 ms per request.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any


class RawHttpError(Exception):
    """The server closed the connection or answered something this client cannot read."""


class RawHttp:
    """One keep-alive connection to ``host:port``; not thread-safe (one per client thread)."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 60.0) -> None:
        self._address = (host, port)
        self._timeout_s = timeout_s
        self._host = f"{host}:{port}".encode()
        self._sock: socket.socket | None = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(self._address, timeout=self._timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buffer = sock, b""
        return self._sock

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def post(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """POST a JSON body; (status, response body)."""
        return self.request("POST", path, body, headers)

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> tuple[int, bytes]:
        """Send a request (with a JSON body unless None); (status, response body)."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        lines = [
            method.encode() + b" " + path.encode() + b" HTTP/1.1",
            b"Host: " + self._host,
            b"Content-Type: application/json",
            b"Content-Length: " + str(len(payload)).encode(),
            *(f"{name}: {value}".encode() for name, value in headers.items()),
        ]
        return self._exchange(b"\r\n".join(lines) + b"\r\n\r\n" + payload)

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        sock = self._connect()
        try:
            sock.sendall(request)
            head = self._read_until(sock, b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise RawHttpError("chunked responses are not supported")
            body = self._read_exactly(sock, length)
        except (OSError, ValueError) as error:
            self.close()
            raise RawHttpError(str(error)) from error
        if close:
            self.close()
        return status, body

    def _read_until(self, sock: socket.socket, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise RawHttpError("the server closed the connection")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, sock: socket.socket, length: int) -> bytes:
        while len(self._buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RawHttpError("the server closed the connection mid-body")
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return body
