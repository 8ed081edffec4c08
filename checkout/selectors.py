"""Reads for the checkout: sessions by token, orders for their session, prices for a cart."""

import hashlib

from django.utils import timezone

from catalog.models import Product
from checkout.exceptions import OrderNotFound, ProductNotFound, SessionInvalid, SessionRequired
from checkout.models import Order, ShopperSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_get_by_token(*, token: str | None) -> ShopperSession:
    """The live session a token names; SessionRequired without a token, SessionInvalid when unknown or expired."""
    if not token:
        raise SessionRequired()
    session = ShopperSession.objects.filter(token_hash=token_hash(token), expires_at__gt=timezone.now()).first()
    if session is None:
        raise SessionInvalid()
    return session


def order_get_for_session(*, order_id: int, session: ShopperSession) -> Order:
    """Another session's order is answered exactly like a missing one, so order ids reveal nothing."""
    order = Order.objects.filter(pk=order_id, session=session).prefetch_related("lines").first()
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


def products_for_cart(*, product_ids: list[int]) -> dict[int, Product]:
    """The products of a cart by id, with their current prices; ProductNotFound names every missing one."""
    products = Product.objects.only("id", "price", "currency").in_bulk(product_ids)
    missing = sorted(set(product_ids) - set(products))
    if missing:
        raise ProductNotFound(product_ids=missing)
    return products
