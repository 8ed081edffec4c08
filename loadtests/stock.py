"""Deep stock before a run: `python -m loadtests.stock --quantity 1000000 --sold-out 1`.

A run must never inherit the last run's sold-out shelves: every product gets `--quantity` units, except the last
`--sold-out` products of the first catalogue page, which get none, so the run sees real 409 insufficient_stock
answers and checks them against the inventory. Shoppers pick products by rank (weight 1/rank), so the last ones
of the page draw a fraction of a percent of the checkouts. It runs in its own process with the server's
DATABASE_URL and writes Inventory through the ORM, which the catalogue allows operators and scripts to do.
"""

import argparse
import os
import sys

# What the shoppers choose from: the first page of GET /api/products (page_size 100 by default).
FIRST_PAGE = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.stock", description=__doc__.splitlines()[0])
    parser.add_argument("--quantity", type=int, required=True, help="Units every product gets.")
    parser.add_argument("--sold-out", type=int, default=0, help="Products of the first page left with none.")
    args = parser.parse_args(argv)
    if args.quantity < 0 or args.sold_out < 0:
        parser.error("--quantity and --sold-out must be 0 or more")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    sold_out, updated = stock_reset(quantity=args.quantity, sold_out=args.sold_out)
    if not updated:
        sys.stderr.write("stock reset: no inventory rows; seed the catalogue first (manage.py seed_products)\n")
        return 1
    sys.stdout.write(f"stock reset: {updated} products at {args.quantity} units, sold out: {sold_out or 'none'}\n")
    return 0


def stock_reset(*, quantity: int, sold_out: int) -> tuple[list[int], int]:
    """Every product at `quantity`, the last `sold_out` of the first page at 0; returns those ids and the count."""
    from django.db import transaction
    from django.utils import timezone

    from catalog.models import Inventory

    # QuerySet.update() skips auto_now: the stock's updated_at is set here, as the checkout's UPDATE does.
    now = timezone.now()
    with transaction.atomic():
        updated = Inventory.objects.update(quantity=quantity, updated_at=now)
        first_page = list(Inventory.objects.order_by("product_id").values_list("product_id", flat=True)[:FIRST_PAGE])
        emptied = first_page[max(len(first_page) - sold_out, 0) :] if sold_out else []
        Inventory.objects.filter(product_id__in=emptied).update(quantity=0, updated_at=now)
    return emptied, updated


if __name__ == "__main__":
    sys.exit(main())
