"""Writes to the catalogue: products and their inventory."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import Inventory
from shop.exceptions import DomainError


class InsufficientStock(DomainError):
    status_code = 409
    code = "insufficient_stock"

    def __init__(self, *, product_ids: list[int]):
        names = ", ".join(str(pid) for pid in product_ids)
        super().__init__(f"Not enough stock for product(s) {names}.", product_ids=product_ids)


def stock_reserve(*, lines: Iterable[tuple[int, int]]) -> None:
    """Take `quantity` units off the inventory of each `(product_id, quantity)` line, or none at all.

    Must run inside the caller's `transaction.atomic()`, which is what makes the lines all-or-nothing: on
    InsufficientStock the caller's transaction rolls back the lines already taken.

    Locks: one conditional UPDATE per line row-locks that product's Inventory row until the caller's transaction
    ends, taken in ascending product id, so two carts over the same products never wait on each other in a cycle.
    Nothing is read first: `quantity >= n` in the UPDATE itself is the check, so no round trip happens between the
    check and the write. A line of a product without an Inventory row counts as out of stock.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("stock_reserve() must run inside transaction.atomic().")
    ordered = sorted(lines)
    now = timezone.now()
    for index, (product_id, quantity) in enumerate(ordered):
        taken = Inventory.objects.filter(product_id=product_id, quantity__gte=quantity).update(
            # update() skips auto_now; inventory readers and caches key on updated_at.
            quantity=F("quantity") - quantity,
            updated_at=now,
        )
        if not taken:
            raise InsufficientStock(product_ids=[product_id, *_short_lines(ordered[index + 1 :])])


def _short_lines(lines: list[tuple[int, int]]) -> list[int]:
    """Which of the lines not yet tried lack stock too, so one 409 names them all (a plain read, no locks)."""
    if not lines:
        return []
    available = dict(
        Inventory.objects.filter(product_id__in=[pid for pid, _ in lines]).values_list("product_id", "quantity")
    )
    return [pid for pid, quantity in lines if available.get(pid, 0) < quantity]
