"""Writes of the checkout: shopper sessions, orders, idempotency records and their cleanup."""

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog import gate
from catalog.exceptions import InsufficientStock
from catalog.models import StockHold
from checkout.exceptions import InvalidRequest, PurchaseLimitExceeded, SessionRequired
from checkout.idempotency import (
    idempotency_claim,
    idempotency_claim_with_reads,
    idempotency_finish,
    idempotency_release,
    request_hash,
)
from checkout.models import IdempotencyRecord, Order, OrderLine, ShopperSession
from checkout.selectors import ProductPrice, products_for_cart, session_and_prices, token_hash
from checkout.writes import order_write
from shop.exceptions import DomainError

SESSION_TTL = timedelta(hours=24)
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
    cap = settings.CHECKOUT_MAX_QUANTITY_PER_LINE
    if len(lines) == 1 and 1 <= lines[0].quantity <= cap:  # most checkouts: nothing to merge or refuse
        return lines
    totals = Counter()
    for line in lines:
        totals[line.product_id] += line.quantity
    too_many = sorted(pid for pid, quantity in totals.items() if quantity > cap)
    if too_many:
        raise InvalidRequest(f"At most {cap} units of one product per checkout.", product_ids=too_many)
    if any(quantity < 1 for quantity in totals.values()):
        raise InvalidRequest("Each quantity must be at least 1.")
    return [LineRequest(product_id=pid, quantity=totals[pid]) for pid in sorted(totals)]


def checkout_place(*, token: str | None, lines: list[LineRequest], idempotency_key: str | None) -> Order:
    """A checkout request, the one entry point of POST /api/checkout and the cart's checkout: the lines merged once,
    the flash-sale gate, then PostgreSQL (the reads and claim of _checkout_start, the order of _order_place).

    A line of a product on flash sale is admitted or refused by the gate (catalog.gate) before the session is read:
    a sold-out product is answered 409 insufficient_stock (reason "sold_out") without touching PostgreSQL. Units an
    attempt took from the gate go back when PostgreSQL does not sell them, except those PostgreSQL found short (the
    gate counted too many; keeping them brings it down). A repeat of an admitted Idempotency-Key passes the gate
    without taking units, so PostgreSQL answers it as before.
    """
    if not token:
        raise SessionRequired()
    lines = lines_merge(lines=lines)
    admission = gate.admit(
        lines=[(line.product_id, line.quantity) for line in lines], token=token, idempotency_key=idempotency_key
    )
    if isinstance(admission, gate.Refusal):
        raise InsufficientStock(product_ids=admission.product_ids, reason=admission.reason)
    try:
        start = _checkout_start(token=token, lines=lines, idempotency_key=idempotency_key)
        order = _order_place(
            session=start.session, lines=lines, idempotency_key=idempotency_key, prices=start.prices, claim=start.claim
        )
    except InsufficientStock as exc:
        gate.give_back(admission, except_ids=frozenset(exc.product_ids if exc.reason is None else ()))
        raise
    except DomainError:  # the answer is PostgreSQL's to give again for this key (stored, or the key is busy)
        gate.give_back(admission)
        raise
    except BaseException:
        gate.give_back(admission)
        gate.key_forget(admission.key_marker)
        raise
    if isinstance(start.claim, Order):  # a repeat of an earlier order: nothing was sold now
        gate.give_back(admission)
    return order


@dataclass(frozen=True)
class CheckoutStart:
    """What _order_place needs, as _checkout_start read (and claimed) it."""

    session: ShopperSession
    prices: dict[int, ProductPrice]
    claim: IdempotencyRecord | Order | None


def _checkout_start(*, token: str, lines: list[LineRequest], idempotency_key: str | None) -> CheckoutStart:
    """The token's session, the (merged) lines' prices and, with an Idempotency-Key, the key's claim.

    On PostgreSQL that is one round trip: the claim rides with the reads (idempotency_claim_with_reads) and is
    written only for a live session whose products exist. Errors come in this order: SessionInvalid, then
    ProductNotFound.
    """
    product_ids = [line.product_id for line in lines]
    if idempotency_key is None or connection.vendor != "postgresql":
        session, prices = session_and_prices(token=token, product_ids=product_ids)
        return CheckoutStart(session=session, prices=prices, claim=None)
    session, prices, claim = idempotency_claim_with_reads(
        token=token, product_ids=product_ids, key=idempotency_key, request_hash=request_hash(lines)
    )
    return CheckoutStart(session=session, prices=prices, claim=claim)


def order_place(*, session: ShopperSession, lines: list[LineRequest], idempotency_key: str | None) -> Order:
    """Sell the lines to the session as one order, or nothing at all; prices come from the database.

    Statements: the price read, then one short transaction (see writes.order_write): the order INSERT, one INSERT
    for all its lines and, last, the stock UPDATEs (one per line, see stock_reserve for the locks), so the contended
    stock rows are locked only from their UPDATE to the end of that transaction. With an Idempotency-Key, the key
    is claimed in its own autocommit INSERT before that transaction (see checkout.idempotency) and marked done
    inside it, so the order and "key used" commit together. A replay (same key, same lines) returns the stored
    order without touching stock; an out-of-stock answer is stored too and replayed as the same 409 (use a new key
    to try again). Any other failure releases the key, so a retry with it starts afresh.

    The returned order carries `placed_lines`, so it is answered without reading its lines back.
    """
    return _order_place(session=session, lines=lines_merge(lines=lines), idempotency_key=idempotency_key)


def _order_place(
    *,
    session: ShopperSession,
    lines: list[LineRequest],
    idempotency_key: str | None,
    prices: dict[int, ProductPrice] | None = None,
    claim: IdempotencyRecord | Order | None = None,
) -> Order:
    """order_place on merged lines; `prices` and `claim`: what _checkout_start read and claimed already, when the
    caller has it, else read and claimed here."""
    if prices is None:
        prices = products_for_cart(product_ids=[line.product_id for line in lines])
    currencies = {prices[line.product_id].currency for line in lines}
    if len(currencies) > 1:
        raise InvalidRequest("All products of one checkout must be priced in the same currency.")

    if idempotency_key is not None and claim is None:
        claim = idempotency_claim(session=session, key=idempotency_key, request_hash=request_hash(lines))
    if isinstance(claim, Order):
        return claim
    record = claim
    limits = {
        line.product_id: prices[line.product_id].max_per_session
        for line in lines
        if prices[line.product_id].max_per_session is not None
    }

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
        _sale_terms_check(lines=lines, prices=prices, limits=limits)
        order_write(order, lines=order_lines, record=record, limits=limits)
    except (InsufficientStock, PurchaseLimitExceeded) as exc:
        if record is not None:
            idempotency_finish(record, error=exc)
        raise
    except BaseException:
        if record is not None:
            idempotency_release(record)
        raise
    order.placed_lines = order_lines
    return order


def _sale_terms_check(*, lines: list[LineRequest], prices: dict[int, ProductPrice], limits: dict[int, int]) -> None:
    """Refuse, before any write, a line whose flash sale has not started or which alone passes its product's limit
    (order_write counts the session's earlier orders against the limit)."""
    now = timezone.now()
    early = [line.product_id for line in lines if (prices[line.product_id].sale_starts_at or now) > now]
    if early:
        raise InsufficientStock(product_ids=early, reason="sale_not_started")
    over = [line.product_id for line in lines if line.quantity > limits.get(line.product_id, line.quantity)]
    if over:
        raise PurchaseLimitExceeded(product_ids=over)


# --- Cleanup --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupResult:
    sessions: int
    idempotency_records: int
    holds: int = 0


def expired_cleanup(*, batch_size: int = 1000, dry_run: bool = False) -> CleanupResult:
    """Delete expired cart holds (they hold nothing already) and idempotency records, then expired sessions that
    placed no order, `batch_size` rows per
    statement so no delete holds many row locks or a long transaction while the shop serves.

    Sessions that placed orders are kept: each order names its session.
    """
    cutoff = timezone.now() - CLEANUP_GRACE
    records = IdempotencyRecord.objects.filter(expires_at__lt=cutoff)
    sessions = ShopperSession.objects.filter(expires_at__lt=cutoff).exclude(
        Exists(Order.objects.filter(session=OuterRef("pk")))
    )
    holds = StockHold.objects.filter(expires_at__lte=timezone.now())
    if dry_run:
        return CleanupResult(sessions=sessions.count(), idempotency_records=records.count(), holds=holds.count())
    return CleanupResult(
        holds=_delete_in_batches(holds, batch_size=batch_size),
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
