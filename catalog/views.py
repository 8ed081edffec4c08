"""The storefront: the first page of the catalogue rendered on the server, in API order."""

import json

from django.shortcuts import render

from catalog import cache
from catalog.exceptions import InvalidParameter
from catalog.params import ProductListParams, product_list_params
from catalog.selectors import product_categories, product_list_with_stock
from catalog.serializers import json_bytes
from shop.redis import redis_available, redis_client

LOW_STOCK = 10
# CloudFront may keep the page 30 s (stock refreshes in the browser); browsers always revalidate.
STOREFRONT_CACHE_CONTROL = "public, s-maxage=30, max-age=0"


def storefront(request):
    error = ""
    try:
        params = product_list_params(request.GET)
    except InvalidParameter as exc:
        params, error = ProductListParams(), exc.detail
    rows = product_list_with_stock(
        category=params.category, q=params.q, offset=params.offset, limit=params.page_size + 1
    )
    has_next = len(rows) > params.page_size
    products = [_with_stock_label(row) for row in rows[: params.page_size]]
    context = {
        "products": products,
        "categories": _categories(),
        "params": params,
        "error": error,
        "prev_query": params.query_string(page=params.page - 1) if params.page > 1 else None,
        "next_query": params.query_string(page=params.page + 1) if has_next else None,
        "cache_state": _cache_state(),
        "low_stock": LOW_STOCK,
    }
    response = render(request, "catalog/storefront.html", context, status=400 if error else 200)
    response["Cache-Control"] = "no-store" if error else STOREFRONT_CACHE_CONTROL
    return response


def _with_stock_label(row: dict) -> dict:
    quantity = row["quantity"] or 0
    if quantity == 0:
        stock, label = "out", "Out of stock"
    elif quantity < LOW_STOCK:
        stock, label = "low", f"Only {quantity} left"
    else:
        stock, label = "in", f"{quantity} in stock"
    return {**row, "quantity": quantity, "stock": stock, "stock_label": label}


def _categories() -> list[str]:
    # A DISTINCT over the whole catalogue: cached and invalidated with the product responses.
    entry, _ = cache.fetch("categories", lambda: cache.CachedResponse.of(json_bytes(product_categories())))
    return json.loads(entry.body)


def _cache_state() -> str:
    if redis_client() is None:
        return "local"
    return "ok" if redis_available() else "degraded"
