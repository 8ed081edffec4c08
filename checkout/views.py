"""The storefront's cart and order pages. The server renders the frame; the page's script reads the session's cart
or order from the JSON API (the session token lives in the browser) and sends every write there."""

from django.conf import settings
from django.shortcuts import render

# Nothing of a shopper's is in these pages, so CloudFront may share them like the catalogue's.
PAGE_CACHE_CONTROL = "public, s-maxage=30, max-age=0"


def cart_page(request):
    response = render(request, "checkout/cart.html", {"hold_minutes": settings.CART_HOLD_SECONDS // 60})
    response["Cache-Control"] = PAGE_CACHE_CONTROL
    return response


def order_page(request, order_id: int):
    response = render(request, "checkout/order.html", {"order_id": order_id})
    response["Cache-Control"] = PAGE_CACHE_CONTROL
    return response
