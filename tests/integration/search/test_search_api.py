"""GET /v1/search over HTTP: answers, problem+json for bad parameters, OpenAPI examples."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("page_size=0", "invalid_page_size"),
        ("page_size=1000", "invalid_page_size"),
        ("price_min=500&price_max=100", "invalid_price_range"),
        ("sort=cheapest", "invalid_sort"),
        ("currency=XYZ", "unsupported_currency"),
        ("region=mars", "unknown_region"),
    ],
)
def test_bad_parameters_are_problem_json(client: Any, query: str, code: str) -> None:
    response = client.get(f"/v1/search?q=kettle&{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_a_mistyped_parameter_is_a_400_problem(client: Any) -> None:
    response = client.get("/v1/search?page=two")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_personalizing_for_someone_else_is_forbidden(client: Any) -> None:
    response = client.get("/v1/search?q=kettle&user=cus_someone")
    assert response.status_code in (401, 403)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_search_answers_with_its_shape(client: Any) -> None:
    response = client.get("/v1/search?q=kettle&region=all&currency=USD")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["search_id"].startswith("srch_") and body["currency"] == "USD"
    assert {"hits", "total", "facets", "understood", "took_ms", "index_versions"} <= set(body)
    assert len(body["facets"]["price"]) == 7


def test_the_openapi_document_carries_examples(client: Any) -> None:
    document = client.get("/schema/openapi.json").json()
    operation = document["paths"]["/v1/search"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert all("examples" in p for p in operation["parameters"])
