"""The hand-written statements of the checkout name their tables and columns through the models' _meta."""

import re

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import connection

from catalog.models import Inventory, Product, StockHold
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
    "stock-take": ((Inventory, StockHold), stock_take_sql),
    "stock-lock": (Inventory, lambda: model_sql(Inventory, writes.STOCK_LOCK_SQL.replace("{ids}", "%s"))),
    "holds-used": (StockHold, lambda: model_sql(StockHold, writes.HOLDS_USED_SQL.replace("{ids}", "%s"))),
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
    models, build = STATEMENTS[name]
    tables = {model._meta.db_table for model in (models if isinstance(models, tuple) else (models,))}

    sql = build()
    names = quoted_names(sql)

    assert tables <= names
    assert names - tables <= set().union(*(database_columns(table) for table in tables))
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
