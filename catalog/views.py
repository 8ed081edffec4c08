"""The storefront's catalogue pages, rendered on the server: the product list (in API order) and a product's page.

The pages write nothing: their scripts send every write (sessions, cart, checkout) to the JSON API.
"""

import json

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from catalog import cache
from catalog.exceptions import InvalidParameter
from catalog.params import MAX_ID, ProductListParams, product_list_params
from catalog.selectors import product_categories, storefront_product, storefront_products
from catalog.serializers import json_bytes

LOW_STOCK = 10
# CloudFront may keep a page 30 s (stock refreshes in the browser); browsers always revalidate.
STOREFRONT_CACHE_CONTROL = "public, s-maxage=30, max-age=0"


def storefront(request):
    error = ""
    try:
        params = product_list_params(request.GET)
    except InvalidParameter as exc:
        params, error = ProductListParams(), exc.detail
    rows = storefront_products(category=params.category, q=params.q, offset=params.offset, limit=params.page_size + 1)
    has_next = len(rows) > params.page_size
    context = {
        "products": [_with_stock_label(row) for row in rows[: params.page_size]],
        "categories": _categories(),
        "params": params,
        "error": error,
        "prev_query": params.query_string(page=params.page - 1) if params.page > 1 else None,
        "next_query": params.query_string(page=params.page + 1) if has_next else None,
        "low_stock": LOW_STOCK,
    }
    response = render(request, "catalog/storefront.html", context, status=400 if error else 200)
    response["Cache-Control"] = "no-store" if error else STOREFRONT_CACHE_CONTROL
    return response


def product_page(request, product_id: int):
    product = storefront_product(product_id=product_id) if product_id <= MAX_ID else None
    if product is None:
        raise Http404("No such product.")
    on_sale = product["sale_starts_at"] is not None
    context = {
        "product": _with_stock_label(product),
        "on_sale": on_sale,
        "sale_started": on_sale and product["sale_starts_at"] <= timezone.now(),
        "max_quantity": min(settings.CHECKOUT_MAX_QUANTITY_PER_LINE, product["max_per_session"] or 10**6),
        "hold_minutes": settings.CART_HOLD_SECONDS // 60,
        "low_stock": LOW_STOCK,
    }
    response = render(request, "catalog/product.html", context)
    response["Cache-Control"] = STOREFRONT_CACHE_CONTROL
    return response


def _with_stock_label(row: dict) -> dict:
    """`stock` and its label from `available`, the units a shopper can still buy or hold."""
    available = row["available"]
    if available == 0:
        stock, label = "out", "Sold out"
    elif available < LOW_STOCK:
        stock, label = "low", f"Only {available} left"
    else:
        stock, label = "in", f"{available} in stock"
    return {**row, "stock": stock, "stock_label": label}


def _categories() -> list[str]:
    # A DISTINCT over the whole catalogue: cached and invalidated with the product responses.
    entry, _ = cache.fetch("categories", lambda: cache.CachedResponse.of(json_bytes(product_categories())))
    return json.loads(entry.body)
