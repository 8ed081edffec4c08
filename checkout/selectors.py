"""Reads for the checkout: sessions by token, orders for their session, prices for a cart."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from catalog.exceptions import ProductNotFound
from catalog.models import Product
from checkout.exceptions import OrderNotFound, SessionInvalid, SessionRequired
from checkout.models import Order, ShopperSession
from shop.sql import db_datetime, from_db, loaded, model_sql, placeholders

SESSION_SQL = "SELECT {id}, {created_at}, {expires_at} FROM {table} WHERE {token_hash} = %s AND {expires_at} > %s"
PRICES_SQL = "SELECT {id}, {price}, {currency}, {max_per_session}, {sale_starts_at} FROM {table} WHERE {id} IN "


@dataclass(frozen=True, slots=True)
class ProductPrice:
    """What a checkout reads of a product: its price and the terms of its flash sale, if any."""

    price: Decimal
    currency: str
    max_per_session: int | None = None
    sale_starts_at: datetime | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_get_by_token(*, token: str | None) -> ShopperSession:
    """The live session a token names; SessionRequired without a token, SessionInvalid when unknown or expired."""
    if not token:
        raise SessionRequired()
    hashed = token_hash(token)
    with connection.cursor() as cursor:
        cursor.execute(model_sql(ShopperSession, SESSION_SQL), [hashed, db_datetime(timezone.now())])
        row = cursor.fetchone()
    return session_from_row(hashed, row)


def session_from_row(hashed: str, row: tuple | None) -> ShopperSession:
    """The session of a `(id, created_at, expires_at)` row read by its token's hash; SessionInvalid for no row."""
    if row is None:
        raise SessionInvalid()
    session_id, created_at, expires_at = row
    return loaded(
        ShopperSession(
            id=session_id,
            token_hash=hashed,
            created_at=from_db(ShopperSession, "created_at", created_at),
            expires_at=from_db(ShopperSession, "expires_at", expires_at),
        )
    )


def order_get_for_session(*, order_id: int, session: ShopperSession) -> Order:
    """Another session's order is answered exactly like a missing one, so order ids reveal nothing."""
    order = Order.objects.filter(pk=order_id, session=session).prefetch_related("lines").first()
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


def products_for_cart(*, product_ids: list[int]) -> dict[int, ProductPrice]:
    """The current price of each product of a cart, by id; ProductNotFound names every missing one."""
    rows = []
    if product_ids:
        with connection.cursor() as cursor:
            cursor.execute(prices_sql(len(product_ids)), product_ids)
            rows = cursor.fetchall()
    return prices_from_rows(product_ids, rows)


def session_and_prices(*, token: str | None, product_ids: list[int]) -> tuple[ShopperSession, dict[int, ProductPrice]]:
    """session_get_by_token and products_for_cart, in one round trip on PostgreSQL; the session's error comes first."""
    if not token:
        raise SessionRequired()
    if connection.vendor != "postgresql" or not product_ids:
        return session_get_by_token(token=token), products_for_cart(product_ids=product_ids)
    hashed = token_hash(token)
    sql = model_sql(ShopperSession, SESSION_SQL) + "; " + prices_sql(len(product_ids))
    with connection.cursor() as cursor:
        cursor.execute(sql, [hashed, db_datetime(timezone.now()), *product_ids])
        session_row = cursor.fetchone()
        cursor.nextset()
        price_rows = cursor.fetchall()
    return session_from_row(hashed, session_row), prices_from_rows(product_ids, price_rows)


def prices_sql(count: int) -> str:
    """PRICES_SQL for `count` product ids."""
    return model_sql(Product, PRICES_SQL) + f"({placeholders(count)})"


def prices_from_rows(product_ids: list[int], rows: list[tuple]) -> dict[int, ProductPrice]:
    """Prices by id from PRICES_SQL's rows; ProductNotFound names every id without a row."""
    prices = {
        product_id: ProductPrice(
            price=from_db(Product, "price", price),
            currency=currency,
            max_per_session=max_per_session,
            sale_starts_at=None if sale_starts_at is None else from_db(Product, "sale_starts_at", sale_starts_at),
        )
        for product_id, price, currency, max_per_session, sale_starts_at in rows
    }
    missing = sorted(set(product_ids) - set(prices))
    if missing:
        raise ProductNotFound(product_ids=missing)
    return prices
