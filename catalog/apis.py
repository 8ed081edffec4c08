"""HTTP for the catalogue: products (cached bytes), live inventory, and the cache metrics."""

import hmac
from math import ceil

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import cache
from catalog.exceptions import ProductNotFound
from catalog.metrics import metrics_snapshot
from catalog.params import (
    DEFAULT_PAGE_SIZE,
    MAX_BATCH_IDS,
    MAX_ID,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    MAX_TEXT_LENGTH,
    ProductListParams,
    product_id_param,
    product_ids_param,
    product_list_params,
)
from catalog.selectors import inventory_get, inventory_list, product_count, product_detail, product_list
from catalog.serializers import (
    ErrorSerializer,
    InventorySerializer,
    MetricsSerializer,
    ProductDetailSerializer,
    ProductSerializer,
    inventory_item,
    json_bytes,
    product_detail_item,
    product_item,
)
from shop.apis import NO_STORE, NoStoreApi
from shop.exceptions import DomainError

PRODUCTS_PATH = "/api/products"


def product_cache_control() -> str:
    # Browsers revalidate after a minute; CloudFront keeps a copy as long as Redis does.
    return f"public, s-maxage={settings.PRODUCT_CACHE_TTL}, max-age=60"


def _errors(*codes: int) -> dict:
    described = {
        400: "invalid_parameter: a query parameter is out of bounds.",
        401: "unauthorized: missing or wrong bearer token.",
        404: "product_not_found: no product has this id (`product_ids` names it when it is a number).",
        503: "database_unavailable: the database did not answer in time (Retry-After).",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}


_CACHE_HEADERS = [
    OpenApiParameter("X-Cache-Status", str, OpenApiParameter.HEADER, response=True, enum=["HIT", "MISS", "BYPASS"]),
    OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=True),
    OpenApiParameter("Cache-Control", str, OpenApiParameter.HEADER, response=True),
]
_NOT_MODIFIED = OpenApiResponse(description="Not modified: the If-None-Match ETag is current.")
# Answered by the HTTP server before the app sees the request, so its body is not the app's JSON.
URI_TOO_LONG = OpenApiResponse(
    description="The request line (method, path and query) is longer than the HTTP server takes: 4094 bytes, "
    "gunicorn's limit_request_line."
)

# What catalog.params accepts, stated for the schema.
_TEXT = {"type": "string", "maxLength": MAX_TEXT_LENGTH, "pattern": "^[^\\u0000]*$"}
_PRODUCT_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
PRODUCT_ID_PATH = OpenApiParameter(
    "product_id", _PRODUCT_ID, OpenApiParameter.PATH, description="Any other value is a product that does not exist."
)


class CachedProductApi(APIView):
    """A product endpoint. catalog.middleware answers its GETs before the rest of the middleware runs; the view
    answers what the middleware hands on: HEAD, and errors, which DRF's exception handler (shop.exceptions) renders.
    """

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            response["Cache-Control"] = NO_STORE
        return response


def cached_json_response(request, key: str, build) -> HttpResponse:
    entry, cache_status = cache.fetch(key, build, near_key=_near_key(request))
    return _cached_response(request, entry, cache_status)


def near_cached_response(request) -> HttpResponse | None:
    """The answer this process keeps for exactly this path and query string, found before they are parsed."""
    entry = cache.near_get(_near_key(request))
    return _cached_response(request, entry, cache.HIT) if entry is not None else None


def _near_key(request) -> str:
    return f"{request.path_info}?{request.META.get('QUERY_STRING', '')}"


def _cached_response(request, entry: cache.CachedResponse, cache_status: str) -> HttpResponse:
    if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), entry.etag):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(entry.body, content_type="application/json", headers=dict(entry.headers))
    response["ETag"] = entry.etag
    response["Cache-Control"] = product_cache_control()
    response["X-Cache-Status"] = cache_status
    return response


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): a CDN may hand back our ETag with a W/ prefix after compressing the body.
    return any(candidate.strip().removeprefix("W/") == etag for candidate in if_none_match.split(","))


class ProductListApi(CachedProductApi):
    @extend_schema(
        operation_id="products_list",
        summary="Products in id order, filtered and paginated",
        parameters=[
            OpenApiParameter("category", _TEXT, description="Exact category name (blanks at either end dropped)."),
            OpenApiParameter(
                "q", _TEXT, description="Case-insensitive search in the product name (blanks at either end dropped)."
            ),
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
                description="1-based page number; past the last page the list is empty.",
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
                description=f"Default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}.",
            ),
            *_CACHE_HEADERS,
            OpenApiParameter("Link", str, OpenApiParameter.HEADER, response=True, description="RFC 8288 pages."),
            OpenApiParameter(
                "X-Total-Count",
                int,
                OpenApiParameter.HEADER,
                response=True,
                description="Matching products; above 1,000 matches, PostgreSQL's estimate.",
            ),
        ],
        responses={200: ProductSerializer(many=True), 304: _NOT_MODIFIED, **_errors(400, 503), 414: URI_TOO_LONG},
    )
    def get(self, request):
        return product_list_get(request)


def product_list_get(request) -> HttpResponse:
    params = product_list_params(request.GET)
    return cached_json_response(request, f"products?{params.query_string()}", lambda: product_list_response(params))


def product_list_response(params: ProductListParams) -> cache.CachedResponse:
    size = params.page_size
    rows = product_list(category=params.category, q=params.q, offset=params.offset, limit=size + 1)
    has_next = len(rows) > size
    rows = rows[:size]
    if has_next:
        total = max(product_count(category=params.category, q=params.q), params.offset + size + 1)
        last = max(ceil(total / size), params.page + 1)
    elif rows or params.page == 1:
        # The last page: the total follows without a COUNT query.
        total = params.offset + len(rows)
        last = params.page
    else:
        total = product_count(category=params.category, q=params.q)
        last = max(1, ceil(total / size))
    pages = [("first", 1)]
    if params.page > 1:
        pages.append(("prev", min(params.page - 1, last)))
    if has_next:
        pages.append(("next", params.page + 1))
    pages.append(("last", last))
    link = ", ".join(f'<{_page_url(params, page)}>; rel="{rel}"' for rel, page in pages)
    body = json_bytes([product_item(row) for row in rows])
    return cache.CachedResponse.of(body, headers=(("Link", link), ("X-Total-Count", str(total))))


def _page_url(params: ProductListParams, page: int) -> str:
    # Relative references (RFC 8288 3.1): the cached bytes stay right whichever host the request came through.
    query = params.query_string(page=page)
    return f"{PRODUCTS_PATH}?{query}" if query else PRODUCTS_PATH


class ProductDetailApi(CachedProductApi):
    @extend_schema(
        operation_id="products_retrieve",
        summary="One product with its description",
        parameters=[PRODUCT_ID_PATH, *_CACHE_HEADERS],
        responses={200: ProductDetailSerializer, 304: _NOT_MODIFIED, **_errors(404, 503), 414: URI_TOO_LONG},
    )
    def get(self, request, product_id):
        return product_detail_get(request, product_id)


def product_detail_get(request, product_id: str) -> HttpResponse:
    pk = product_id_param(product_id)
    return cached_json_response(request, f"product:{pk}", lambda: product_detail_response(pk))


def product_detail_response(product_id: int) -> cache.CachedResponse:
    row = product_detail(product_id=product_id)
    if row is None:
        raise ProductNotFound(product_ids=[product_id])
    return cache.CachedResponse.of(json_bytes(product_detail_item(row)))


class InventoryApi(NoStoreApi):
    @extend_schema(
        operation_id="inventory_retrieve",
        summary="Live stock of one product (never cached)",
        parameters=[PRODUCT_ID_PATH],
        responses={200: InventorySerializer, **_errors(404, 503), 414: URI_TOO_LONG},
    )
    def get(self, request, product_id):
        pk = product_id_param(product_id)
        row = inventory_get(product_id=pk)
        if row is None:
            raise ProductNotFound(product_ids=[pk])
        return Response(inventory_item(row))


class InventoryBatchApi(NoStoreApi):
    @extend_schema(
        operation_id="inventory_list",
        summary=f"Live stock of up to {MAX_BATCH_IDS} products in one request; unknown ids are left out",
        parameters=[
            OpenApiParameter(
                "product_ids",
                {"type": "array", "items": _PRODUCT_ID, "minItems": 1, "maxItems": MAX_BATCH_IDS},
                required=True,
                style="form",
                explode=False,
                description=f"Comma-separated product ids, e.g. 1,2,3: 1 to {MAX_BATCH_IDS}, no blanks.",
            )
        ],
        responses={200: InventorySerializer(many=True), **_errors(400, 503), 414: URI_TOO_LONG},
    )
    def get(self, request):
        rows = inventory_list(product_ids=product_ids_param(request.query_params))
        return Response([inventory_item(row) for row in rows])


class MetricsUnauthorized(DomainError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}


class MetricsDisabled(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class MetricsApi(NoStoreApi):
    @extend_schema(
        operation_id="metrics_retrieve",
        summary="Fleet-wide product cache hits and misses, and this database's open connections",
        description="Needs `Authorization: Bearer <METRICS_TOKEN>` when a token is configured; without one it "
        "answers only with DEBUG on.",
        parameters=[OpenApiParameter("Authorization", str, OpenApiParameter.HEADER, description="Bearer <token>")],
        responses={
            200: MetricsSerializer,
            **_errors(401),
            404: OpenApiResponse(ErrorSerializer, description="not_found: no token configured and DEBUG off."),
        },
    )
    def get(self, request):
        _authorize_metrics(request.META.get("HTTP_AUTHORIZATION", ""))
        return Response(metrics_snapshot())


def _authorize_metrics(authorization: str) -> None:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return
        raise MetricsDisabled("Metrics are disabled: no METRICS_TOKEN is configured.")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise MetricsUnauthorized("A valid bearer token is required.")
