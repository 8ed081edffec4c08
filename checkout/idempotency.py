"""Idempotency-Keys: claiming one for a checkout, finishing or releasing it, and replaying an earlier answer.

A key is claimed with an autocommit INSERT … ON CONFLICT DO NOTHING before the order transaction, so a second
request with the same key sees it claimed, and marked done inside that transaction (writes.order_write), so the
order and "key used" commit together.

A claim whose request died is not left for long. A request that fails while its process lives releases the key,
on a fresh connection when its own was dropped (a terminated backend, a deadline). One whose worker was killed
cannot: its claim is taken over by the next retry once it is older than the lease, the worker timeout. No request
runs longer than that (shop/workers.py exits a worker whose request thread does), and even one that did could not
place a second order: the order write marks the key done only while the claim's started_at is still its own, in
the same transaction, and rolls everything back otherwise.
"""

import hashlib
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from catalog.models import Product
from checkout.exceptions import IdempotencyKeyReused, ReplayedError, RequestInProgress
from checkout.models import IdempotencyRecord, Order, ShopperSession
from checkout.selectors import (
    SESSION_SQL,
    ProductPrice,
    prices_from_rows,
    prices_sql,
    session_from_row,
    token_hash,
)
from shop.sql import db_datetime, loaded, model_sql, placeholders

log = logging.getLogger("shop.checkout")

IDEMPOTENCY_TTL = timedelta(hours=24)


def idempotency_lease() -> timedelta:
    """A claim older than this was abandoned: its request ran past the worker timeout, so its worker is gone."""
    return timedelta(seconds=settings.WORKER_TIMEOUT_SECONDS)


_CLAIM_INTO = "INSERT INTO {table} ({session_id}, {key}, {request_hash}, {started_at}, {created_at}, {expires_at}) "
_CLAIM_ONCE = "ON CONFLICT ({session_id}, {key}) DO NOTHING RETURNING {id}"
CLAIM_INSERT_SQL = _CLAIM_INTO + "VALUES (%s, %s, %s, %s, %s, %s) " + _CLAIM_ONCE
# The claim with the checkout's reads, as one statement: `s` is the live session of the token (selectors'
# SESSION_SQL), `p` says whether every product exists in one currency, `c` inserts the claim only when both hold.
# It returns the session's row and the new claim's id (NULL when not inserted). The prices follow as a second
# statement (selectors' SQL).
CLAIM_SESSION_SQL = "WITH s (id, created_at, expires_at) AS (" + SESSION_SQL + "), "
CLAIM_PRODUCTS_SQL = (
    "p (sellable) AS (SELECT count(*) = %s AND count(DISTINCT {currency}) = 1 FROM {table} WHERE {id} IN "
)
CLAIM_WITH_READS_SQL = (
    "c AS (" + _CLAIM_INTO + "SELECT s.id, %s, %s, %s, %s, %s FROM s, p WHERE p.sellable " + _CLAIM_ONCE + ") "  # noqa: S608 - names from _meta
    "SELECT s.id, s.created_at, s.expires_at, (SELECT * FROM c) FROM s"
)


def request_hash(lines) -> str:
    """What makes two requests "the same": their merged lines (services.lines_merge), whatever their order or
    spelling in the body."""
    canonical = json.dumps([[line.product_id, line.quantity] for line in lines], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_record(*, session: ShopperSession, key: str, request_hash: str, now) -> IdempotencyRecord:
    return IdempotencyRecord(
        session=session,
        key=key,
        request_hash=request_hash,
        started_at=now,
        created_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )


def idempotency_claim(*, session: ShopperSession, key: str, request_hash: str) -> IdempotencyRecord | Order:
    """Own the key (an IdempotencyRecord to finish), or get the order an earlier request with it placed.

    Raises RequestInProgress while another request owns the key, IdempotencyKeyReused for a different body, and
    ReplayedError with the stored answer of an earlier failure.
    """
    record = _new_record(session=session, key=key, request_hash=request_hash, now=timezone.now())
    if _insert_unless_exists(record):
        return record
    return _claim_existing(record)


def idempotency_claim_with_reads(
    *, token: str, product_ids: list[int], key: str, request_hash: str
) -> tuple[ShopperSession, dict[int, ProductPrice], IdempotencyRecord | Order | None]:
    """The session of `token`, the prices of `product_ids` and the key's claim (as idempotency_claim), in one round
    trip on PostgreSQL.

    Errors come as the separate reads give them: SessionInvalid, then ProductNotFound. The claim is written only
    for a live session whose products all exist in one currency; with several currencies the claim is None (the
    caller refuses the cart) and nothing was written.
    """
    hashed = token_hash(token)
    now = timezone.now()
    db_now = db_datetime(now)
    record = _new_record(session=None, key=key, request_hash=request_hash, now=now)
    ids = placeholders(len(product_ids))
    sql = (
        model_sql(ShopperSession, CLAIM_SESSION_SQL)
        + model_sql(Product, CLAIM_PRODUCTS_SQL)
        + f"({ids})), "
        + model_sql(IdempotencyRecord, CLAIM_WITH_READS_SQL)
        + "; "
        + prices_sql(len(product_ids))
    )
    values = [hashed, db_now, len(product_ids), *product_ids, key, request_hash, db_now, db_now]
    values += [db_datetime(record.expires_at), *product_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
        cursor.nextset()
        price_rows = cursor.fetchall()
    session = session_from_row(hashed, row[:3] if row else None)
    prices = prices_from_rows(product_ids, price_rows)
    record.session = session
    if row[3] is not None:
        record.pk = row[3]
        return session, prices, loaded(record)
    if len({price.currency for price in prices.values()}) > 1:
        return session, prices, None
    return session, prices, _claim_existing(record)


def _claim_existing(record: IdempotencyRecord) -> IdempotencyRecord | Order:
    """`record`'s key was claimed before: replay, refuse, or take over an expired or abandoned claim."""
    now = record.started_at
    existing = IdempotencyRecord.objects.filter(session=record.session, key=record.key).first()
    if existing is None:  # deleted by cleanup_expired between the two statements
        raise RequestInProgress()
    expired = existing.expires_at <= now
    if not expired:
        if existing.request_hash != record.request_hash:
            raise IdempotencyKeyReused()
        if existing.order_id is not None:
            return Order.objects.prefetch_related("lines").get(pk=existing.order_id)
        if existing.response_status is not None:
            raise ReplayedError(status_code=existing.response_status, body=existing.response_body)
        if existing.started_at > now - idempotency_lease():
            raise RequestInProgress()

    # Expired, or abandoned by a worker that died: take it over, unless someone else just did (or finished it).
    taken = (
        IdempotencyRecord.objects.filter(pk=existing.pk, started_at=existing.started_at)
        .filter(Q(response_status__isnull=True, order__isnull=True) | Q(expires_at__lte=now))
        .update(
            request_hash=record.request_hash,
            started_at=now,
            created_at=now,
            expires_at=record.expires_at,
            order=None,
            response_status=None,
            response_body=None,
        )
    )
    if not taken:
        raise RequestInProgress()
    existing.started_at = now
    return existing


def _insert_unless_exists(record: IdempotencyRecord) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: one autocommit statement, no IntegrityError, no transaction left broken.

    True when this call created the row (and so owns the key).
    """
    values = [
        record.session_id,
        record.key,
        record.request_hash,
        db_datetime(record.started_at),
        db_datetime(record.created_at),
        db_datetime(record.expires_at),
    ]
    with connection.cursor() as cursor:
        cursor.execute(model_sql(IdempotencyRecord, CLAIM_INSERT_SQL), values)
        row = cursor.fetchone()
    if row is None:
        return False
    record.pk = row[0]
    loaded(record)
    return True


def _owned(record: IdempotencyRecord):
    """The record, only while this request still owns it (nobody took it over, not yet finished)."""
    return IdempotencyRecord.objects.filter(
        pk=record.pk, started_at=record.started_at, response_status__isnull=True, order__isnull=True
    )


def idempotency_finish(record: IdempotencyRecord, *, error) -> None:
    """Store the error answer for replays. (The order answer is stored with the order, by writes.order_write.)"""
    _owned(record).update(response_status=error.status_code, response_body=error.body())


def idempotency_release(record: IdempotencyRecord) -> None:
    """Give the key up, so a retry with it starts afresh at once. When the request failed because its connection
    was lost (backend terminated, deadline passed), the release goes over a new one."""
    try:
        _owned(record).delete()
        return
    except DatabaseError as exc:
        error = exc
    if not connection.in_atomic_block and not connection.is_usable():
        connection.close()
        try:
            _owned(record).delete()
            return
        except DatabaseError as exc:
            error = exc
    # The claim then lapses after idempotency_lease() and the next retry takes it over.
    log.warning("idempotency key not released", extra={"record_id": record.pk, "error": str(error)})
