"""The OpenAPI schema describes every catalogue response, errors included; the docs page loads nothing remote."""

import json
import re

import pytest
from django.contrib.staticfiles import finders

from catalog.params import MAX_BATCH_IDS, MAX_ID, MAX_PAGE, MAX_PAGE_SIZE, MAX_TEXT_LENGTH

EXPECTED = {
    ("/api/products", "get"): {"200", "304", "400", "414", "503"},
    ("/api/products/{product_id}", "get"): {"200", "304", "404", "414", "503"},
    ("/api/inventory", "get"): {"200", "400", "414", "503"},
    ("/api/inventory/{product_id}", "get"): {"200", "404", "414", "503"},
    ("/api/metrics", "get"): {"200", "401", "404"},
}


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.parametrize(("path", "method"), list(EXPECTED))
def test_schema_lists_every_response_of_the_catalogue(schema, path, method):
    responses = schema["paths"][path][method]["responses"]

    assert set(responses) == EXPECTED[(path, method)]
    for status, response in responses.items():
        if status == "414":  # from the HTTP server, before the app: no body of ours
            assert "content" not in response
        elif status.startswith(("4", "5")):
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schema_error_shape_is_code_and_detail(schema):
    error = schema["components"]["schemas"]["Error"]

    assert set(error["required"]) == {"code", "detail"}


def test_schema_documents_the_cache_headers(schema):
    headers = schema["paths"]["/api/products"]["get"]["responses"]["200"]["headers"]

    assert {"X-Cache-Status", "ETag", "Cache-Control", "Link", "X-Total-Count"} <= set(headers)
    assert set(headers["X-Cache-Status"]["schema"]["enum"]) == {"HIT", "MISS", "BYPASS"}


def test_docs_page_serves_its_assets_locally(client, settings):
    # Unhashed names: the manifest only exists after collectstatic (`make serve`).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    html = client.get("/api/docs/").content.decode()

    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL)
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset


def parameter(schema: dict, path: str, name: str) -> dict:
    (found,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
    return found


def test_schema_states_the_product_list_bounds(schema):
    page = parameter(schema, "/api/products", "page")["schema"]
    page_size = parameter(schema, "/api/products", "page_size")["schema"]
    q = parameter(schema, "/api/products", "q")["schema"]

    assert (page["type"], page["minimum"], page["maximum"]) == ("integer", 1, MAX_PAGE)
    assert (page_size["minimum"], page_size["maximum"], page_size["default"]) == (1, MAX_PAGE_SIZE, 100)
    assert q["maxLength"] == MAX_TEXT_LENGTH
    assert parameter(schema, "/api/products", "category")["schema"] == q


def test_schema_states_the_product_ids_list(schema):
    product_ids = parameter(schema, "/api/inventory", "product_ids")

    assert product_ids["required"] is True
    assert (product_ids["style"], product_ids["explode"]) == ("form", False)
    assert product_ids["schema"] == {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "minItems": 1,
        "maxItems": MAX_BATCH_IDS,
    }


@pytest.mark.parametrize("path", ["/api/products/{product_id}", "/api/inventory/{product_id}"])
def test_schema_states_the_product_id_range(schema, path):
    assert parameter(schema, path, "product_id")["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}
