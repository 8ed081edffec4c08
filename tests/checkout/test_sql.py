"""The hand-written statements of the checkout name their tables and columns through the models' _meta."""

import re

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import connection

from catalog.models import Inventory, Product
from catalog.services import stock_take_sql
from checkout import idempotency, selectors, writes
from checkout.models import IdempotencyRecord, Order, OrderLine, ShopperSession
from shop.sql import model_sql

pytestmark = pytest.mark.django_db

STATEMENTS = {
    "session": (ShopperSession, lambda: model_sql(ShopperSession, selectors.SESSION_SQL)),
    "prices": (Product, lambda: model_sql(Product, selectors.PRICES_SQL)),
    "order": (Order, lambda: model_sql(Order, writes.ORDER_INSERT_SQL)),
    "order-lines": (OrderLine, lambda: model_sql(OrderLine, writes.ORDER_LINES_INSERT_SQL)),
    "claim": (IdempotencyRecord, lambda: model_sql(IdempotencyRecord, idempotency.CLAIM_INSERT_SQL)),
    "claim-done": (IdempotencyRecord, lambda: model_sql(IdempotencyRecord, writes.CLAIM_DONE_SQL)),
    "stock-take": (Inventory, stock_take_sql),
}


@pytest.fixture
def fresh_sql():
    model_sql.cache_clear()
    yield
    model_sql.cache_clear()


def quoted_names(sql: str) -> set[str]:
    return set(re.findall(r'"([^"]+)"', sql))


def database_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}


@pytest.mark.parametrize("name", STATEMENTS)
def test_statements_name_only_the_model_table_and_its_columns(name):
    model, build = STATEMENTS[name]
    table = model._meta.db_table

    sql = build()
    names = quoted_names(sql)

    assert table in names
    assert names - {table} <= database_columns(table)
    assert "{" not in sql


def test_statements_follow_a_renamed_column(fresh_sql, monkeypatch):
    # given: the models say the columns are called something else
    monkeypatch.setattr(ShopperSession._meta.get_field("token_hash"), "column", "token_digest")
    monkeypatch.setattr(Inventory._meta.get_field("quantity"), "column", "on_hand")

    # when
    session_sql = model_sql(ShopperSession, selectors.SESSION_SQL)
    stock_sql = stock_take_sql()

    # then
    assert '"token_digest" = %s' in session_sql and '"token_hash"' not in session_sql
    assert '"on_hand" = "on_hand" - %s' in stock_sql and '"on_hand" >= %s' in stock_sql
    assert '"quantity"' not in stock_sql


def test_statements_refuse_a_field_the_model_lacks(fresh_sql):
    with pytest.raises(FieldDoesNotExist):
        model_sql(ShopperSession, "SELECT {token} FROM {table}")
