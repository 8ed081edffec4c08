"""Carts: the lines a shopper session holds, and their checkout.

A cart is the set of the session's StockHold rows (catalog.models): adding a line holds its units for
CART_HOLD_SECONDS, during which no other session's checkout or hold can take them (available = on hand less the
other sessions' active holds). A hold whose `expires_at` has passed counts for nothing wherever it is read, so holds
release without a sweep; cleanup_expired deletes the rows later. The cart's checkout extends the holds once, then
places the order through checkout_place, whose write uses the session's holds up in the same transaction.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from catalog.exceptions import InsufficientStock, ProductNotFound
from catalog.models import Inventory, Product, StockHold
from checkout.exceptions import (
    CartEmpty,
    HoldLimitExceeded,
    HoldNotAllowed,
    InvalidRequest,
    PurchaseLimitExceeded,
    SessionInvalid,
    SessionRequired,
)
from checkout.models import Order, OrderLine, ShopperSession
from checkout.selectors import session_get_by_token, token_hash
from checkout.services import LineRequest, checkout_place


@dataclass(frozen=True)
class CartLine:
    product_id: int
    name: str
    price: Decimal
    currency: str
    quantity: int
    expires_at: datetime


def cart_get(*, session: ShopperSession) -> list[CartLine]:
    """The session's active holds, in product-id order (expired ones are left out: they hold nothing)."""
    holds = (
        StockHold.objects.filter(session=session, expires_at__gt=timezone.now())
        .select_related("product")
        .order_by("product_id")
    )
    return [
        CartLine(
            product_id=hold.product_id,
            name=hold.product.name,
            price=hold.product.price,
            currency=hold.product.currency,
            quantity=hold.units,
            expires_at=hold.expires_at,
        )
        for hold in holds
    ]


def cart_line_set(*, token: str | None, product_id: int, quantity: int, client_ip: str) -> ShopperSession:
    """Hold `quantity` units of a product in the token's cart for CART_HOLD_SECONDS (0 removes the line).

    Refuses, with nothing written: a quantity outside 0..CHECKOUT_MAX_QUANTITY_PER_LINE (InvalidRequest), an
    unknown product (ProductNotFound), a product on flash sale (HoldNotAllowed: the Redis gate counts its units
    first come, first served and knows nothing of holds), more than the product's max_per_session counting the
    session's orders (PurchaseLimitExceeded), more than is available (InsufficientStock), more than
    CART_MAX_HOLDS_PER_SESSION products in the cart or CART_MAX_HELD_UNITS_PER_IP units held from `client_ip`
    (HoldLimitExceeded).

    One transaction. Locks, in this order: the session's row (FOR NO KEY UPDATE: the session's holds and its
    limit are counted one request at a time), on PostgreSQL an advisory lock on `client_ip` (the address's units
    likewise), then the product's Inventory row (FOR NO KEY UPDATE, the lock a checkout's stock UPDATE takes: a
    hold and a checkout of one product run one after the other). The counts are read after the locks, in
    statements of their own, so they see every hold and order committed before. A checkout (checkout.writes)
    takes the session row before stock rows too, and never takes either of the other two, so no cycle can form.
    """
    cap = settings.CHECKOUT_MAX_QUANTITY_PER_LINE
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= cap:
        raise InvalidRequest(f"quantity must be a whole number from 0 to {cap}.", product_ids=[product_id])
    if not token:
        raise SessionRequired()
    now = timezone.now()
    with transaction.atomic():
        session = (
            ShopperSession.objects.select_for_update(no_key=True)
            .filter(token_hash=token_hash(token), expires_at__gt=now)
            .first()
        )
        if session is None:
            raise SessionInvalid()
        product = Product.objects.filter(pk=product_id).values("max_per_session", "sale_starts_at").first()
        if product is None:
            raise ProductNotFound(product_ids=[product_id])
        if quantity == 0:
            StockHold.objects.filter(session=session, product_id=product_id).delete()
            return session
        if product["sale_starts_at"] is not None:
            raise HoldNotAllowed(product_id=product_id)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"cart-ip:{client_ip}"])
        inventory = (
            Inventory.objects.select_for_update(no_key=True).filter(product_id=product_id).values("quantity").first()
        )
        _hold_check(session=session, product_id=product_id, quantity=quantity, client_ip=client_ip, now=now)
        limit = product["max_per_session"]
        if limit is not None:
            bought = OrderLine.objects.filter(order__session=session, product_id=product_id).aggregate(
                units=Sum("quantity")
            )["units"]
            if (bought or 0) + quantity > limit:
                raise PurchaseLimitExceeded(product_ids=[product_id])
        others = _held(StockHold.objects.filter(product_id=product_id).exclude(session=session), now=now)
        if (inventory["quantity"] if inventory else 0) - others < quantity:
            raise InsufficientStock(product_ids=[product_id])
        StockHold.objects.update_or_create(
            session=session,
            product_id=product_id,
            defaults={
                "units": quantity,
                "expires_at": now + timedelta(seconds=settings.CART_HOLD_SECONDS),
                "extended": False,
                "client_ip": client_ip,
            },
        )
    return session


def _hold_check(*, session: ShopperSession, product_id: int, quantity: int, client_ip: str, now: datetime) -> None:
    """The caps on holds: products per session, units per client address (this line's current hold not counted)."""
    active = StockHold.objects.filter(expires_at__gt=now)
    others_of_session = active.filter(session=session).exclude(product_id=product_id).count()
    if others_of_session + 1 > settings.CART_MAX_HOLDS_PER_SESSION:
        raise HoldLimitExceeded(f"A cart holds at most {settings.CART_MAX_HOLDS_PER_SESSION} products at a time.")
    of_address = _held(active.filter(client_ip=client_ip).exclude(session=session, product_id=product_id), now=now)
    if of_address + quantity > settings.CART_MAX_HELD_UNITS_PER_IP:
        raise HoldLimitExceeded(
            f"Carts from one address hold at most {settings.CART_MAX_HELD_UNITS_PER_IP} units at a time."
        )


def _held(holds, *, now: datetime) -> int:
    return holds.filter(expires_at__gt=now).aggregate(units=Sum("units"))["units"] or 0


def cart_line_remove(*, token: str | None, product_id: int) -> ShopperSession:
    """Release the token's hold of a product (nothing happens when there is none). One DELETE, no lock."""
    session = session_get_by_token(token=token)
    StockHold.objects.filter(session=session, product_id=product_id).delete()
    return session


def cart_checkout(*, token: str | None, idempotency_key: str | None) -> Order:
    """Buy what the token's cart holds: its active holds become one order, all or nothing (checkout_place).

    First the holds get their one extension (another CART_HOLD_SECONDS from now, for those not extended before), so
    a checkout started near the end of a hold does not lose it while it runs. A hold that expires anyway before the
    order is written is sold only if the units are still there: the stock UPDATE counts the other sessions' holds,
    never this session's, and refuses (409, nothing written) what others took meanwhile. The order's write deletes
    the session's holds of the products it sold, in the same transaction, so a hold is never sold twice.
    """
    session = session_get_by_token(token=token)
    now = timezone.now()
    StockHold.objects.filter(session=session, extended=False, expires_at__gt=now).update(
        expires_at=now + timedelta(seconds=settings.CART_HOLD_SECONDS), extended=True
    )
    holds = list(
        StockHold.objects.filter(session=session, expires_at__gt=now)
        .order_by("product_id")
        .values_list("product_id", "units")
    )
    if not holds:
        raise CartEmpty()
    lines = [LineRequest(product_id=product_id, quantity=units) for product_id, units in holds]
    return checkout_place(token=token, lines=lines, idempotency_key=idempotency_key)
