"""The OpenAPI schema describes every catalogue response, errors included; the docs page loads nothing remote."""

import json
import re

import pytest
from django.contrib.staticfiles import finders

EXPECTED = {
    ("/api/products", "get"): {"200", "304", "400", "503"},
    ("/api/products/{product_id}", "get"): {"200", "304", "404", "503"},
    ("/api/inventory", "get"): {"200", "400", "503"},
    ("/api/inventory/{product_id}", "get"): {"200", "404", "503"},
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
        if status.startswith(("4", "5")):
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
