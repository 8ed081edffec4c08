"""Writes of the checkout: shopper sessions, orders, idempotency records and their cleanup."""

import hashlib
import json
import logging
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog.services import InsufficientStock
from checkout.exceptions import IdempotencyKeyReused, InvalidRequest, ReplayedError, RequestInProgress
from checkout.models import IdempotencyRecord, Order, OrderLine, ShopperSession
from checkout.selectors import ProductPrice, products_for_cart, token_hash
from checkout.sql import db_datetime, loaded, model_sql
from checkout.writes import order_write

log = logging.getLogger("shop.checkout")

SESSION_TTL = timedelta(hours=24)
IDEMPOTENCY_TTL = timedelta(hours=24)
# A claim older than this was abandoned (its worker died): longer than gunicorn's 20 s worker timeout, so a
# request that is still running is never taken over.
IDEMPOTENCY_LEASE = timedelta(seconds=60)
# Sessions and records expired for longer than this are deleted; a request that looked one up just before it
# expired has long finished by then.
CLEANUP_GRACE = timedelta(minutes=10)
MAX_LINES = 50


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


# --- Sessions -------------------------------------------------------------------------------------------


def session_create() -> tuple[ShopperSession, str]:
    """A new guest session and its token. The token is returned once and only its hash is stored."""
    token = secrets.token_urlsafe(32)
    session = ShopperSession.objects.create(token_hash=token_hash(token), expires_at=timezone.now() + SESSION_TTL)
    return session, token


def session_tokens_write(*, count: int, path: Path) -> Path:
    """Create `count` sessions for a load test and write their tokens to `path`, one per line."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    expires_at = timezone.now() + SESSION_TTL
    ShopperSession.objects.bulk_create(
        [ShopperSession(token_hash=token_hash(token), expires_at=expires_at) for token in tokens], batch_size=1000
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{token}\n" for token in tokens))
    return path


# --- Orders ---------------------------------------------------------------------------------------------


def lines_merge(*, lines: list[LineRequest]) -> list[LineRequest]:
    """One line per product (quantities of repeats added), in product-id order, within the per-line cap."""
    if not lines:
        raise InvalidRequest("A checkout needs at least one line.")
    if len(lines) > MAX_LINES:
        raise InvalidRequest(f"A checkout takes at most {MAX_LINES} lines.")
    totals = Counter()
    for line in lines:
        totals[line.product_id] += line.quantity
    cap = settings.CHECKOUT_MAX_QUANTITY_PER_LINE
    too_many = sorted(pid for pid, quantity in totals.items() if quantity > cap)
    if too_many:
        raise InvalidRequest(f"At most {cap} units of one product per checkout.", product_ids=too_many)
    if any(quantity < 1 for quantity in totals.values()):
        raise InvalidRequest("Each quantity must be at least 1.")
    return [LineRequest(product_id=pid, quantity=totals[pid]) for pid in sorted(totals)]


def order_place(
    *,
    session: ShopperSession,
    lines: list[LineRequest],
    idempotency_key: str | None,
    prices: dict[int, ProductPrice] | None = None,
) -> Order:
    """Sell the lines to the session as one order, or nothing at all; prices come from the database.

    Statements: the price read, then one short transaction (see writes.order_write): the order INSERT, one INSERT
    for all its lines and, last, the stock UPDATEs (one per line, see stock_reserve for the locks), so the contended
    stock rows are locked only from their UPDATE to the COMMIT right after it. With an Idempotency-Key, the key is
    claimed in its own autocommit INSERT before that transaction and marked done inside it, so the order and "key
    used" commit together. A replay (same key, same lines) returns the stored order without touching
    stock; an out-of-stock answer is stored too and replayed as the same 409 (use a new key to try again). Any
    other failure releases the key, so a retry with it starts afresh.

    `prices`: the lines' prices when the caller read them already (selectors.session_and_prices), else read here.
    The returned order carries `placed_lines`, so it is answered without reading its lines back.
    """
    lines = lines_merge(lines=lines)
    if prices is None:
        prices = products_for_cart(product_ids=[line.product_id for line in lines])
    currencies = {prices[line.product_id].currency for line in lines}
    if len(currencies) > 1:
        raise InvalidRequest("All products of one checkout must be priced in the same currency.")

    record = None
    if idempotency_key is not None:
        claimed = _idempotency_claim(session=session, key=idempotency_key, request_hash=_request_hash(lines))
        if isinstance(claimed, Order):
            return claimed
        record = claimed

    order_lines = [
        OrderLine(product_id=line.product_id, quantity=line.quantity, unit_price=prices[line.product_id].price)
        for line in lines
    ]
    order = Order(
        session=session,
        total=sum(line.unit_price * line.quantity for line in order_lines),
        currency=currencies.pop(),
        idempotency_key=idempotency_key or "",
    )
    try:
        # durable: never nested in a longer transaction, so the locks end at this block's COMMIT.
        with transaction.atomic(durable=True):
            order_write(order, lines=order_lines, record=record)
    except InsufficientStock as exc:
        if record is not None:
            _idempotency_finish(record, error=exc)
        raise
    except BaseException:
        if record is not None:
            _idempotency_release(record)
        raise
    order.placed_lines = order_lines
    return order


# --- Idempotency ----------------------------------------------------------------------------------------


def _request_hash(lines: list[LineRequest]) -> str:
    """What makes two requests "the same": their merged lines, whatever their order or spelling in the body."""
    canonical = json.dumps([[line.product_id, line.quantity] for line in lines], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotency_claim(*, session: ShopperSession, key: str, request_hash: str) -> IdempotencyRecord | Order:
    """Own the key (an IdempotencyRecord to finish), or get the order an earlier request with it placed.

    Raises RequestInProgress while another request owns the key, IdempotencyKeyReused for a different body, and
    ReplayedError with the stored answer of an earlier failure.
    """
    now = timezone.now()
    record = IdempotencyRecord(
        session=session,
        key=key,
        request_hash=request_hash,
        started_at=now,
        created_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )
    if _insert_unless_exists(record):
        return record

    existing = IdempotencyRecord.objects.filter(session=session, key=key).first()
    if existing is None:  # deleted by cleanup_expired between the two statements
        raise RequestInProgress()
    expired = existing.expires_at <= now
    if not expired:
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if existing.order_id is not None:
            return Order.objects.prefetch_related("lines").get(pk=existing.order_id)
        if existing.response_status is not None:
            raise ReplayedError(status_code=existing.response_status, body=existing.response_body)
        if existing.started_at > now - IDEMPOTENCY_LEASE:
            raise RequestInProgress()

    # Expired, or abandoned by a worker that died: take it over, unless someone else just did (or finished it).
    taken = (
        IdempotencyRecord.objects.filter(pk=existing.pk, started_at=existing.started_at)
        .filter(Q(response_status__isnull=True, order__isnull=True) | Q(expires_at__lte=now))
        .update(
            request_hash=request_hash,
            started_at=now,
            created_at=now,
            expires_at=now + IDEMPOTENCY_TTL,
            order=None,
            response_status=None,
            response_body=None,
        )
    )
    if not taken:
        raise RequestInProgress()
    existing.started_at = now
    return existing


CLAIM_INSERT_SQL = (
    "INSERT INTO {table} ({session_id}, {key}, {request_hash}, {started_at}, {created_at}, {expires_at}) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT ({session_id}, {key}) DO NOTHING RETURNING {id}"
)


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


def _idempotency_finish(record: IdempotencyRecord, *, error) -> None:
    """Store the error answer for replays. (The order answer is stored with the order, by writes.order_write.)"""
    _owned(record).update(response_status=error.status_code, response_body=error.body())


def _idempotency_release(record: IdempotencyRecord) -> None:
    try:
        _owned(record).delete()
    except DatabaseError as exc:
        # The claim then lapses after IDEMPOTENCY_LEASE and the next retry takes it over.
        log.warning("idempotency key not released", extra={"record_id": record.pk, "error": str(exc)})


# --- Cleanup --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupResult:
    sessions: int
    idempotency_records: int


def expired_cleanup(*, batch_size: int = 1000, dry_run: bool = False) -> CleanupResult:
    """Delete expired idempotency records, then expired sessions that placed no order, `batch_size` rows per
    statement so no delete holds many row locks or a long transaction while the shop serves.

    Sessions that placed orders are kept: each order names its session.
    """
    cutoff = timezone.now() - CLEANUP_GRACE
    records = IdempotencyRecord.objects.filter(expires_at__lt=cutoff)
    sessions = ShopperSession.objects.filter(expires_at__lt=cutoff).exclude(
        Exists(Order.objects.filter(session=OuterRef("pk")))
    )
    if dry_run:
        return CleanupResult(sessions=sessions.count(), idempotency_records=records.count())
    return CleanupResult(
        idempotency_records=_delete_in_batches(records, batch_size=batch_size),
        sessions=_delete_in_batches(sessions, batch_size=batch_size),
    )


def _delete_in_batches(queryset, *, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        # The DELETE re-applies the filter: a key taken over since the read is no longer expired and stays.
        _, per_model = queryset.filter(pk__in=ids).delete()
        deleted += per_model.get(queryset.model._meta.label, 0)
