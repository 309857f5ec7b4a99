"""JSON request bodies decoded as the OpenAPI document describes them: strictly, 400 if not.

Litestar decodes a JSON body to builtins and then converts it with the handler's signature in
msgspec's lax mode, so ``"1"``, ``1.0`` and ``true`` pass where the schema says integer; and it
lets the ``UnicodeDecodeError`` of invalid UTF-8 inside a JSON string escape as a 500.
``StrictJsonRequest`` (the app's request class) decodes every JSON body straight into its
handler's ``data`` type with ``strict=True``. Path and query parameters are strings on the wire:
the signature model still converts them as before.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.serialization import default_deserializer

# msgspec names the offending value as a JSON path at the end of its message.
_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$\.?(?P<key>[^`]*)`$")
# One decoder per handler, built on its first body (handlers live as long as the app).
_DECODERS: dict[HTTPRouteHandler, msgspec.json.Decoder[Any]] = {}


def body_decoder(handler: HTTPRouteHandler) -> msgspec.json.Decoder[Any]:
    """The strict decoder of ``handler``'s JSON body: its ``data`` type, else plain JSON."""
    decoder = _DECODERS.get(handler)
    if decoder is None:
        field = handler.parsed_data_field
        target: Any = Any
        # A DTO decodes its own data; any other declared type is decoded here.
        if field is not None and handler.resolve_data_dto() is None:
            target = field.raw  # keeps Annotated constraints; msgspec ignores Litestar's marker
        hook = partial(default_deserializer, type_decoders=handler.resolve_type_decoders())
        try:
            decoder = msgspec.json.Decoder(target, strict=True, dec_hook=hook)
        except TypeError:  # a type msgspec cannot decode: the signature model converts it
            decoder = msgspec.json.Decoder(Any, strict=True, dec_hook=hook)
        _DECODERS[handler] = decoder
    return decoder


def invalid_body(request: Request[Any, Any, Any], error: msgspec.ValidationError) -> Exception:
    """A 400 naming the field msgspec refused, shaped like Litestar's own validation errors."""
    match = _AT_PATH.match(str(error))
    message = match.group("message") if match else str(error)
    key = match.group("key") if match else ""
    where = f"`{key}`: " if key else ""
    detail = f"Validation failed for {request.method} {request.url.path}: {where}{message}"
    entry: dict[str, str] = {"message": message, "source": "body"}
    if key:
        entry["key"] = key
    return ValidationException(detail=detail, extra=[entry])


class StrictJsonRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded strictly into its handler's ``data`` type."""

    async def json(self) -> Any:
        """The body as the handler's ``data`` type; 400 for bad bytes, JSON or types."""
        body = await self.body()
        try:
            return body_decoder(self.route_handler).decode(body or b"null")
        except UnicodeDecodeError as error:
            # msgspec checks UTF-8 only when it decodes a string, and raises this, not its own.
            raise SerializationException(
                "the body is not valid UTF-8: a JSON string holds invalid bytes"
            ) from error
        except msgspec.ValidationError as error:
            raise invalid_body(self, error) from error
        except msgspec.DecodeError as error:
            raise SerializationException(str(error)) from error


__all__ = ["StrictJsonRequest", "body_decoder"]
