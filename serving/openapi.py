"""The OpenAPI document tells clients the truth about errors: every one is problem+json.

Litestar documents only each handler's success and a generic 400 body of its own shape; our
exception handlers answer every error as RFC 9457 ``application/problem+json`` instead, so the
document is amended once, when the app is built.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

from serving.problems import PROBLEM_JSON

PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="RFC 9457 problem details; `code` is Souk's stable machine-readable reason.",
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="URI naming the problem type"),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING, description="One human-readable line"),
        "instance": Schema(type=OpenAPIType.STRING, description="The request path"),
        "code": Schema(type=OpenAPIType.STRING, examples=["insufficient_stock"]),
    },
    # Problem-specific members (e.g. `skus`, `step`, `decline_code`, `errors`) may follow.
    additional_properties=True,
)
# Headers a handler checks itself (to answer with its own problem code) but always requires.
REQUIRED_HEADERS = frozenset({"Idempotency-Key"})


def _problem(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_JSON: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
    )


def document_problems(document: OpenAPI) -> None:
    """Declare problem+json for 400, 4XX and 5XX on every operation, in place."""
    if document.components.schemas is None:
        document.components.schemas = {}
    document.components.schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            responses["400"] = _problem("Malformed request: bad JSON, missing or mistyped field")
            responses.setdefault("4XX", _problem("Refused: see `code` (401, 403, 404, 409, 422)"))
            responses.setdefault("5XX", _problem("Server-side failure; 503 means retry later"))
            operation.responses = responses
            for parameter in operation.parameters or []:
                if getattr(parameter, "name", None) in REQUIRED_HEADERS:
                    parameter.required = True
