"""The API's content negotiation: its shortcut gives exactly what DRF's own negotiation gives."""

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from shop.negotiation import FirstRendererNegotiation

ACCEPTS = [None, "", "*/*", "application/json", "application/json; indent=4", "text/html", "application/*", "x/y"]
QUERIES = ["", "format=json", "format=api", "page=2"]
RENDERER_SETS = [[JSONRenderer()], [JSONRenderer(), BrowsableAPIRenderer()], [BrowsableAPIRenderer(), JSONRenderer()]]


def choice(negotiation, accept, query, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/products" + (f"?{query}" if query else ""), **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    except Exception as exc:  # DRF answers ?format=<unknown> with a 404
        return type(exc).__name__
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=["json", "json+api", "api+json"])
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("accept", ACCEPTS)
def test_same_choice_as_drf(accept, query, renderers):
    expected = choice(DefaultContentNegotiation(), accept, query, renderers)
    assert choice(FirstRendererNegotiation(), accept, query, renderers) == expected


@pytest.mark.django_db
def test_api_answers_json_with_or_without_accept(client):
    assert client.get("/api/inventory/0").headers["Content-Type"] == "application/json"
    assert client.get("/api/inventory/0", HTTP_ACCEPT="*/*").headers["Content-Type"] == "application/json"
    refused = client.get("/api/inventory/0", HTTP_ACCEPT="text/html")
    assert refused.status_code == 406
