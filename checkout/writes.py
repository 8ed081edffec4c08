"""The writes of the order transaction: the order, its lines, the Idempotency-Key marked done and, last, the stock.

On PostgreSQL they go to the database as one batch of statements, so the transaction costs three round trips
(BEGIN, the batch, COMMIT) instead of six; each statement still runs on its own, in this order. SQLite takes one
statement per call, so there they go one by one. Either way the caller's transaction.atomic() makes them all or
nothing, and the stock rows are locked in ascending product id, from their UPDATE to the COMMIT.
"""

from django.db import connection
from django.utils import timezone

from catalog.services import InsufficientStock, stock_reserve, stock_take_params, stock_take_sql
from checkout.exceptions import RequestInProgress
from checkout.models import IdempotencyRecord, Order, OrderLine
from checkout.sql import db_datetime, loaded, model_sql, placeholders

ORDER_INSERT_SQL = (
    "INSERT INTO {table} ({session_id}, {status}, {total}, {currency}, {idempotency_key}, {created_at}, {updated_at}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {id}"
)
ORDER_LINES_INSERT_SQL = "INSERT INTO {table} ({order_id}, {product_id}, {quantity}, {unit_price}) VALUES "
# The conditions of services._owned(), by hand: every checkout with an Idempotency-Key runs this UPDATE.
CLAIM_DONE_SQL = (
    "UPDATE {table} SET {order_id} = %s, {response_status} = %s "
    "WHERE {id} = %s AND {started_at} = %s AND {response_status} IS NULL AND {order_id} IS NULL"
)
# The same three writes as one PostgreSQL statement, in CTEs: `o` returns the new order's id, `c` the key's row if
# this request still owns it. The lines' VALUES follow BATCH_LINES_SQL.
BATCH_ORDER_SQL = "WITH o AS (" + ORDER_INSERT_SQL + ")"
BATCH_LINES_SQL = (
    ", l AS (INSERT INTO {table} ({order_id}, {product_id}, {quantity}, {unit_price}) SELECT (SELECT * FROM o), * FROM "
)
BATCH_CLAIM_DONE_SQL = (
    ", c AS (UPDATE {table} SET {order_id} = (SELECT * FROM o), {response_status} = %s "
    "WHERE {id} = %s AND {started_at} = %s AND {response_status} IS NULL AND {order_id} IS NULL RETURNING 1)"
)


def order_write(order: Order, *, lines: list[OrderLine], record: IdempotencyRecord | None) -> None:
    """Write `order` and `lines`, mark `record` (if any) done with it, and take the lines' stock.

    Must run inside transaction.atomic(): raises RequestInProgress when another request took the key over and
    InsufficientStock (naming the short products) when a line's stock is short; the caller's rollback then undoes
    the rest. Sets ids and timestamps as save() would.
    """
    order.created_at = order.updated_at = timezone.now()
    if connection.vendor == "postgresql":
        _write_batch(order, lines=lines, record=record)
    else:
        _write_one_by_one(order, lines=lines, record=record)
    loaded(order)
    for line in lines:
        line.order = order
        loaded(line)


def _order_values(order: Order) -> list:
    created_at, updated_at = db_datetime(order.created_at), db_datetime(order.updated_at)
    return [order.session_id, order.status, order.total, order.currency, order.idempotency_key, created_at, updated_at]


def _write_batch(order: Order, *, lines: list[OrderLine], record: IdempotencyRecord | None) -> None:
    """One round trip: the order, lines and key in one statement, then each line's stock UPDATE."""
    rows = ", ".join([f"({placeholders(3)})"] * len(lines))
    sql = [model_sql(Order, BATCH_ORDER_SQL), model_sql(OrderLine, BATCH_LINES_SQL), f"(VALUES {rows}) AS v)"]
    values = _order_values(order)
    for line in lines:
        values += [line.product_id, line.quantity, line.unit_price]
    if record is None:
        sql.append(" SELECT (SELECT * FROM o), 1")
    else:
        sql.append(model_sql(IdempotencyRecord, BATCH_CLAIM_DONE_SQL))
        sql.append(" SELECT (SELECT * FROM o), (SELECT count(*) FROM c)")
        values += [201, record.pk, db_datetime(record.started_at)]
    stock = stock_take_params([(line.product_id, line.quantity) for line in lines], now=db_datetime(order.updated_at))
    for _, params in stock:
        sql.append("; " + stock_take_sql())
        values += params
    with connection.cursor() as cursor:
        cursor.execute("".join(sql), values)
        order.pk, owned = cursor.fetchone()
        short = []
        for product_id, _ in stock:
            cursor.nextset()
            if not cursor.rowcount:
                short.append(product_id)
    if not owned:
        # Another request took the key over: roll this order back rather than sell twice for one key.
        raise RequestInProgress()
    if short:
        raise InsufficientStock(product_ids=short)


def _write_one_by_one(order: Order, *, lines: list[OrderLine], record: IdempotencyRecord | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(model_sql(Order, ORDER_INSERT_SQL), _order_values(order))
        order.pk = cursor.fetchone()[0]
        values = []
        for line in lines:
            values += [order.pk, line.product_id, line.quantity, line.unit_price]
        row = f"({placeholders(4)})"
        cursor.execute(model_sql(OrderLine, ORDER_LINES_INSERT_SQL) + ", ".join([row] * len(lines)), values)
        if record is not None:
            cursor.execute(
                model_sql(IdempotencyRecord, CLAIM_DONE_SQL), [order.pk, 201, record.pk, db_datetime(record.started_at)]
            )
            if not cursor.rowcount:
                raise RequestInProgress()
    stock_reserve(lines=[(line.product_id, line.quantity) for line in lines])
