"""The writes of the order transaction: the order, its lines, the Idempotency-Key marked done and, last, the stock.

On PostgreSQL they go to the database as one multi-statement query, which PostgreSQL runs as one implicit
transaction: no BEGIN or COMMIT round trip, and the stock rows' locks end with the query itself. Each statement
still runs on its own, in this order. A stock UPDATE that finds too little stock, or a key's "done" UPDATE that
finds the key taken over, is followed by a call of checkout_refuse() (migration checkout 0003), whose error rolls
the whole query back. SQLite takes one statement per call, so there they run one by one in a transaction. Either way
the stock rows are locked in ascending product id, by one statement before their UPDATEs, to the end of the
transaction; the buyer's own holds of the ordered products are deleted last, in the same transaction.
"""

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from catalog.exceptions import InsufficientStock
from catalog.models import Inventory, StockHold
from catalog.selectors import stock_short
from catalog.services import stock_reserve, stock_take_params, stock_take_sql
from checkout.exceptions import PurchaseLimitExceeded, RequestInProgress
from checkout.models import IdempotencyRecord, Order, OrderLine, ShopperSession
from shop.sql import db_datetime, loaded, model_sql, placeholders

ORDER_INSERT_SQL = (
    "INSERT INTO {table} ({session_id}, {status}, {total}, {currency}, {idempotency_key}, {created_at}, {updated_at}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {id}"
)
ORDER_LINES_INSERT_SQL = "INSERT INTO {table} ({order_id}, {product_id}, {quantity}, {unit_price}) VALUES "
# The conditions of idempotency._owned(), by hand: every checkout with an Idempotency-Key runs this UPDATE.
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
BATCH_RESULT_SQL = " SELECT (SELECT * FROM o)"
# CASE evaluates its ELSE only when no row matched (checkout_refuse is VOLATILE, so it is never folded early).
BATCH_KEY_RESULT_SQL = (
    " SELECT (SELECT * FROM o) WHERE CASE WHEN EXISTS (SELECT FROM c) THEN true "
    "ELSE checkout_refuse('request_in_progress', NULL) = 0 END"
)
# A product with max_per_session: the session's row is locked (FOR NO KEY UPDATE: the order INSERT's foreign-key
# lock does not conflict with it), so two checkouts of one session count each other's orders one after the other;
# the count runs in a statement of its own, after the lock, so its snapshot includes the order committed before.
SESSION_LOCK_SQL = "; SELECT 1 FROM {table} WHERE {id} = %s FOR NO KEY UPDATE"
# The session's units of one product over all its orders (this one included), in parts named by their model.
BOUGHT_SQL = (
    (OrderLine, "SELECT COALESCE(SUM(l.{quantity}), 0) FROM {table} l JOIN "),
    (Order, "{table} o ON o.{id} = "),
    (OrderLine, "l.{order_id} WHERE "),
    (Order, "o.{session_id} = %s AND "),
    (OrderLine, "l.{product_id} = %s"),
)
LIMIT_GUARD_SQL = "; SELECT CASE WHEN ({bought}) <= %s THEN 1 ELSE checkout_refuse('limit_exceeded', %s) END"
# The lines' stock rows, locked in ascending product id before their UPDATEs. Each UPDATE then runs in a statement
# of its own, whose snapshot includes every hold committed before the lock was granted (a hold is written under the
# same row's lock, checkout.carts), so a checkout never takes units a hold committed while it waited.
STOCK_LOCK_SQL = "; SELECT 1 FROM {table} WHERE {product} IN ({ids}) ORDER BY {product} FOR NO KEY UPDATE"
# The buyer's own holds of the ordered products are used up by the order, in the same transaction.
HOLDS_USED_SQL = "; DELETE FROM {table} WHERE {session} = %s AND {product} IN ({ids})"
STOCK_GUARD_SQL = (
    " RETURNING 1) SELECT CASE WHEN EXISTS (SELECT FROM t) THEN 1 ELSE checkout_refuse('insufficient_stock', %s) END"
)


class _Refused(Exception):
    """checkout_refuse() ended the batch: which reason, for which product."""

    def __init__(self, reason: str, product_id: int | None):
        super().__init__(reason)
        self.reason = reason
        self.product_id = product_id


def order_write(
    order: Order,
    *,
    lines: list[OrderLine],
    record: IdempotencyRecord | None,
    limits: dict[int, int] | None = None,
) -> None:
    """Write `order` and `lines`, mark `record` (if any) done with it, and take the lines' stock: all or nothing.

    `limits`: `{product_id: max_per_session}` of the lines' limited products; the session's units of each over all
    its orders, this one included, must stay within it.

    Atomic by itself, and never part of a longer transaction (outside tests), so the stock rows are locked only
    until this write ends. Locks, in this order: with `limits`, the session's row; then the stock rows in ascending
    product id. Raises RequestInProgress when another request took the key over, PurchaseLimitExceeded when a
    limit would be passed and InsufficientStock (naming every short product) when a line's stock is short; then
    nothing was written. Sets ids and timestamps as save() would.
    """
    limits = limits or {}
    order.created_at = order.updated_at = timezone.now()
    try:
        if connection.vendor != "postgresql":
            with transaction.atomic(durable=True):
                _write_one_by_one(order, lines=lines, record=record, limits=limits)
        elif connection.in_atomic_block:  # inside a test's transaction: a savepoint keeps a refusal to this batch
            with transaction.atomic(durable=True):
                _write_batch(order, lines=lines, record=record, limits=limits)
        else:
            _write_batch(order, lines=lines, record=record, limits=limits)
    except _Refused as refused:
        if refused.reason == "request_in_progress":
            # Another request took the key over: nothing was sold for this one.
            raise RequestInProgress() from None
        if refused.reason == "limit_exceeded":
            raise PurchaseLimitExceeded(product_ids=[refused.product_id]) from None
        # The batch stopped at the first short line; the later ones are read so the 409 names them all.
        later = [(line.product_id, line.quantity) for line in lines if line.product_id > refused.product_id]
        raise InsufficientStock(product_ids=[refused.product_id, *stock_short(lines=sorted(later))]) from None
    loaded(order)
    for line in lines:
        line.order = order
        loaded(line)


def _order_values(order: Order) -> list:
    created_at, updated_at = db_datetime(order.created_at), db_datetime(order.updated_at)
    return [order.session_id, order.status, order.total, order.currency, order.idempotency_key, created_at, updated_at]


def _bought_sql() -> str:
    return "".join(model_sql(model, part) for model, part in BOUGHT_SQL)


def _write_batch(
    order: Order, *, lines: list[OrderLine], record: IdempotencyRecord | None, limits: dict[int, int]
) -> None:
    """One query: the order, lines and key in one statement, then each line's stock UPDATE with its guard."""
    rows = ", ".join([f"({placeholders(3)})"] * len(lines))
    sql = [model_sql(Order, BATCH_ORDER_SQL), model_sql(OrderLine, BATCH_LINES_SQL), f"(VALUES {rows}) AS v)"]
    values = _order_values(order)
    for line in lines:
        values += [line.product_id, line.quantity, line.unit_price]
    if record is None:
        sql.append(BATCH_RESULT_SQL)
    else:
        sql += [model_sql(IdempotencyRecord, BATCH_CLAIM_DONE_SQL), BATCH_KEY_RESULT_SQL]
        values += [201, record.pk, db_datetime(record.started_at)]
    if limits:
        sql.append(model_sql(ShopperSession, SESSION_LOCK_SQL))
        values.append(order.session_id)
        for product_id, limit in sorted(limits.items()):
            sql.append(LIMIT_GUARD_SQL.format(bought=_bought_sql()))
            values += [order.session_id, product_id, limit, product_id]
    stock = stock_take_params(
        [(line.product_id, line.quantity) for line in lines],
        now=db_datetime(order.updated_at),
        session_id=order.session_id,
    )
    ids = placeholders(len(stock))
    sql.append(model_sql(Inventory, STOCK_LOCK_SQL.replace("{ids}", ids)))
    values += [product_id for product_id, _ in stock]
    for product_id, params in stock:
        sql += ["; WITH t AS (", stock_take_sql(), STOCK_GUARD_SQL]
        values += [*params, product_id]
    sql.append(model_sql(StockHold, HOLDS_USED_SQL.replace("{ids}", ids)))
    values += [order.session_id, *(product_id for product_id, _ in stock)]
    try:
        with connection.cursor() as cursor:
            cursor.execute("".join(sql), values)
            (order.pk,) = cursor.fetchone()
    except DatabaseError as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        raise refused from None


def _refusal(exc: DatabaseError) -> _Refused | None:
    """The checkout_refuse() call behind `exc`, if that is what it is."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if getattr(cause, "sqlstate", None) != "P0001" or diag is None:
        return None
    reason, detail = diag.message_primary, diag.message_detail or ""
    if reason not in ("insufficient_stock", "request_in_progress", "limit_exceeded"):
        return None
    return _Refused(reason, int(detail) if detail else None)


def _write_one_by_one(
    order: Order, *, lines: list[OrderLine], record: IdempotencyRecord | None, limits: dict[int, int]
) -> None:
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
        for product_id, limit in sorted(limits.items()):
            cursor.execute(_bought_sql(), [order.session_id, product_id])
            if cursor.fetchone()[0] > limit:
                raise PurchaseLimitExceeded(product_ids=[product_id])
    ordered = sorted(line.product_id for line in lines)
    list(Inventory.objects.select_for_update(no_key=True).filter(product_id__in=ordered).order_by("pk").values("pk"))
    stock_reserve(lines=[(line.product_id, line.quantity) for line in lines], session_id=order.session_id)
    StockHold.objects.filter(session_id=order.session_id, product_id__in=ordered).delete()
