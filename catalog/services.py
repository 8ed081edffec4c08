"""Writes to the catalogue: products and their inventory."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from catalog import cache, gate
from catalog.exceptions import InsufficientStock, InvalidQuantity, ProductNotFound
from catalog.models import Inventory, Product, StockHold
from catalog.selectors import stock_short
from shop.sql import model_sql


def stock_reserve(*, lines: Iterable[tuple[int, int]], session_id: int) -> None:
    """Take `quantity` units off the inventory of each `(product_id, quantity)` line for session `session_id`, or
    none at all; units other sessions hold (active StockHold rows) are not taken.

    Must run inside the caller's `transaction.atomic()`, which is what makes the lines all-or-nothing: on
    InsufficientStock the caller's transaction rolls back the lines already taken.

    Locks: one conditional UPDATE per line row-locks that product's Inventory row until the caller's transaction
    ends, taken in ascending product id, so two carts over the same products never wait on each other in a cycle.
    Nothing is read first: `quantity >= n + held by others` in the UPDATE itself is the check, so no round trip
    happens between the check and the write. A line of a product without an Inventory row counts as out of stock.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("stock_reserve() must run inside transaction.atomic().")
    ordered = sorted(lines)
    sql = stock_take_sql()
    # auto_now applies to save() only; inventory readers and caches key on updated_at.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for index, (product_id, params) in enumerate(stock_take_params(ordered, now=now, session_id=session_id)):
            cursor.execute(sql, params)
            if not cursor.rowcount:
                raise InsufficientStock(product_ids=[product_id, *stock_short(lines=ordered[index + 1 :])])


def stock_take_params(lines: Iterable[tuple[int, int]], *, now, session_id: int) -> list[tuple[int, list]]:
    """Each `(product_id, quantity)` line's product id and stock_take_sql() parameters, in ascending product id:
    the order the rows must be locked in. `now`: updated_at and the holds' clock, adapted for the database;
    `session_id`: the buyer, whose own holds do not count against it."""
    return [
        (product_id, [quantity, now, product_id, quantity, product_id, now, session_id])
        for product_id, quantity in sorted(lines)
    ]


# The stock row's units less the other sessions' active holds must cover the line. An expired hold counts for
# nothing here, so holds release at their expiry without a sweep.
STOCK_TAKE_SQL = (
    (Inventory, "UPDATE {table} SET {quantity} = {quantity} - %s, {updated_at} = %s "),
    (Inventory, "WHERE {product} = %s AND {quantity} >= %s + "),
    (StockHold, "(SELECT COALESCE(SUM(h.{units}), 0) FROM {table} h "),
    (StockHold, "WHERE h.{product} = %s AND h.{expires_at} > %s AND h.{session} <> %s)"),
)


def stock_take_sql() -> str:
    """One line's conditional UPDATE, by hand: the ORM's query building cost several times its round trip."""
    return "".join(model_sql(model, part) for model, part in STOCK_TAKE_SQL)


# --- Products and stock levels as operators set them (admin, shell, scripts) ---------------------------------------

PRODUCT_EDITABLE_FIELDS = frozenset({"sku", "name", "category", "price", "currency", "description"})


def product_create(
    *,
    sku: str,
    name: str,
    category: str,
    price: Decimal,
    currency: str = "USD",
    description: str = "",
    quantity: int = 0,
) -> Product:
    """A product and its inventory row; the product cache is invalidated by the post_save signal."""
    _check_quantity(quantity)
    with transaction.atomic():
        product = Product.objects.create(
            sku=sku, name=name, category=category, price=price, currency=currency, description=description
        )
        Inventory.objects.create(product=product, quantity=quantity)
    return product


def products_update(*, product_ids: Iterable[int], **fields) -> int:
    """Change `fields` on many products in one UPDATE, then invalidate the product cache (update() sends no signals).

    Returns how many products were updated.
    """
    unknown = set(fields) - PRODUCT_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"products_update() cannot set {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        updated = Product.objects.filter(pk__in=list(product_ids)).update(**fields, updated_at=timezone.now())
        cache.invalidate()
    return updated


def inventory_set(*, product_id: int, quantity: int) -> Inventory:
    """Set a product's stock to an operator's count, creating its inventory row if it has none.

    Locks: the product's Inventory row (update_or_create selects it FOR UPDATE) until the write commits.
    """
    _check_quantity(quantity)
    with transaction.atomic():
        if not Product.objects.filter(pk=product_id).exists():
            raise ProductNotFound(product_ids=[product_id])
        inventory, _ = Inventory.objects.update_or_create(product_id=product_id, defaults={"quantity": quantity})
        transaction.on_commit(lambda: gate.gate_sync(product_id=product_id))
    return inventory


def flash_sale_start(*, product_id: int, starts_at: datetime, max_per_session: int | None = None) -> Product:
    """Put a product on flash sale from `starts_at`: nothing of it sells before then, and from then its sellable
    units are counted down in the Redis gate (catalog.gate). `max_per_session` caps what one session may buy.

    Returns the product; the gate entry is written from PostgreSQL once the change has committed.
    """
    if max_per_session is not None and max_per_session < 1:
        raise InvalidQuantity(f"max_per_session must be at least 1, got {max_per_session}.")
    return _flash_sale_set(product_id=product_id, starts_at=starts_at, max_per_session=max_per_session)


def flash_sale_end(*, product_id: int) -> Product:
    """Take a product off flash sale (and out of the gate); its per-session limit goes with it."""
    return _flash_sale_set(product_id=product_id, starts_at=None, max_per_session=None)


def _flash_sale_set(*, product_id: int, starts_at: datetime | None, max_per_session: int | None) -> Product:
    """Write a product's sale start and per-session limit under its row lock; the gate entry follows on commit."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(pk=product_id).first()
        if product is None:
            raise ProductNotFound(product_ids=[product_id])
        product.sale_starts_at = starts_at
        product.max_per_session = max_per_session
        product.save(update_fields=["sale_starts_at", "max_per_session", "updated_at"])
        transaction.on_commit(lambda: gate.gate_sync(product_id=product_id))
    return product


def _check_quantity(quantity: int) -> None:
    if quantity < 0:
        raise InvalidQuantity(f"Stock cannot be negative, got {quantity}.")
