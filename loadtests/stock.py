"""Deep stock before a run: `python -m loadtests.stock --quantity 1000000 --sold-out 1 [--yes]`.

A run must never inherit the last run's sold-out shelves: every product gets `--quantity` units, except the last
`--sold-out` products of the first catalogue page, which get none, so the run sees real 409 insufficient_stock
answers and checks them against the inventory. Shoppers pick products by rank (weight 1/rank), so the last ones
of the page draw a fraction of a percent of the checkouts. It runs in its own process with the server's
DATABASE_URL and writes Inventory through the ORM, which the catalogue allows operators and scripts to do.

It changes every product of the database, so it only does so without asking in a **dedicated load-test
database**: one whose PostgreSQL comment (`COMMENT ON DATABASE`) is `MARKER`. `make loadtest` writes that comment
when it seeded the catalogue itself into an empty database (`--mark-dedicated`); any other database needs `--yes`
(`make loadtest RESET_STOCK=1`, or the operator's answer at the prompt), and is refused with its name otherwise.

    python -m loadtests.stock --status            # {"database", "dedicated", "products"} as JSON

With `--doorbuster-units N` one product, the last of the first page before the sold-out ones, is the doorbuster:
N units, on flash sale from now with `--doorbuster-limit` units per session (catalog.services.flash_sale_start),
and the Redis gate rebuilt from PostgreSQL, so it counts what this reset wrote (docs/doorbuster.md).
"""

import argparse
import json
import os
import sys

# What the shoppers choose from: the first page of GET /api/products (page_size 100 by default).
FIRST_PAGE = 100
MARKER = "shop load-test database: make loadtest resets its stock without asking"
REFUSED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.stock", description=__doc__.splitlines()[0])
    parser.add_argument("--quantity", type=int, help="Units every product gets.")
    parser.add_argument("--sold-out", type=int, default=0, help="Products of the first page left with none.")
    parser.add_argument(
        "--yes", action="store_true", help="Reset it even when it is not a dedicated load-test database."
    )
    parser.add_argument("--doorbuster-units", type=int, default=0, help="Put one product on flash sale with N units.")
    parser.add_argument("--doorbuster-limit", type=int, default=2, help="The doorbuster's max_per_session.")
    parser.add_argument("--status", action="store_true", help="Print the database, its marker and product count.")
    parser.add_argument("--mark-dedicated", action="store_true", help="Mark the database as a dedicated load-test one.")
    args = parser.parse_args(argv)
    if args.quantity is None and not (args.status or args.mark_dedicated):
        parser.error("give --quantity, --status or --mark-dedicated")
    if (args.quantity or 0) < 0 or args.sold_out < 0 or args.doorbuster_units < 0:
        parser.error("--quantity, --sold-out and --doorbuster-units must be 0 or more")
    if args.doorbuster_limit < 1:
        parser.error("--doorbuster-limit must be at least 1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    if args.mark_dedicated:
        database_mark_dedicated(dedicated=True)
        sys.stdout.write(f"{database_label()} marked as a dedicated load-test database\n")
    if args.status:
        sys.stdout.write(json.dumps(database_status()) + "\n")
    if args.quantity is None:
        return 0
    if not args.yes and not database_is_dedicated():
        sys.stderr.write(
            f"stock reset refused: {database_label()} is not a dedicated load-test database, and this would set the "
            f"stock of every product in it to {args.quantity:,} and end its flash sales. Pass --yes (make loadtest "
            "RESET_STOCK=1) to do it anyway, or load-test a database of its own (docs/loadtests.md).\n"
        )
        return REFUSED
    sold_out, updated = stock_reset(quantity=args.quantity, sold_out=args.sold_out)
    if not updated:
        sys.stderr.write("stock reset: no inventory rows; seed the catalogue first (manage.py seed_products)\n")
        return 1
    sys.stdout.write(
        f"stock reset in {database_label()}: {updated} products at {args.quantity} units, "
        f"sold out: {sold_out or 'none'}\n"
    )
    if args.doorbuster_units:
        product_id = doorbuster_start(units=args.doorbuster_units, limit=args.doorbuster_limit, sold_out=args.sold_out)
        sys.stdout.write(
            f"doorbuster: product {product_id}, {args.doorbuster_units} units, "
            f"at most {args.doorbuster_limit} per session\n"
        )
    from catalog import gate

    # The UPDATEs went past the gate: it is rebuilt from what they wrote (without Redis, PostgreSQL decides alone).
    gate.gate_rebuild()
    return 0


def database_label() -> str:
    """name@host:port of the database DATABASE_URL names, as an operator recognises it."""
    from django.db import connection

    settings = connection.settings_dict
    return f"{settings['NAME']}@{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"


def database_is_dedicated() -> bool:
    from django.db import connection

    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        )
        row = cursor.fetchone()
    return bool(row) and row[0] == MARKER


def database_mark_dedicated(*, dedicated: bool) -> None:
    """Write (or clear) the marker: the comment on the current database. Needs the database's owner."""
    from django.db import connection

    with connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        if dedicated:
            cursor.execute(f"COMMENT ON DATABASE {name} IS %s", [MARKER])
        else:
            cursor.execute(f"COMMENT ON DATABASE {name} IS NULL")


def database_status() -> dict:
    from django.db import connection
    from django.db.utils import ProgrammingError

    from catalog.models import Product

    # Before the first migrate the table is missing: a fresh database has no products.
    products = Product.objects.count() if "catalog_product" in connection.introspection.table_names() else 0
    try:
        dedicated = database_is_dedicated()
    except ProgrammingError:
        dedicated = False
    return {"database": database_label(), "dedicated": dedicated, "products": products}


def stock_reset(*, quantity: int, sold_out: int) -> tuple[list[int], int]:
    """Every product at `quantity` and off flash sale (an earlier run's doorbuster keeps no limit), the last
    `sold_out` of the first page at 0; returns those ids and the count."""
    from django.db import transaction
    from django.utils import timezone

    from catalog.models import Inventory, Product
    from catalog.services import flash_sale_end

    # QuerySet.update() skips auto_now: the stock's updated_at is set here, as the checkout's UPDATE does.
    now = timezone.now()
    with transaction.atomic():
        updated = Inventory.objects.update(quantity=quantity, updated_at=now)
        first_page = list(Inventory.objects.order_by("product_id").values_list("product_id", flat=True)[:FIRST_PAGE])
        emptied = first_page[max(len(first_page) - sold_out, 0) :] if sold_out else []
        Inventory.objects.filter(product_id__in=emptied).update(quantity=0, updated_at=now)
        for product_id in Product.objects.filter(sale_starts_at__isnull=False).values_list("pk", flat=True):
            flash_sale_end(product_id=product_id)
    return emptied, updated


def doorbuster_start(*, units: int, limit: int, sold_out: int) -> int:
    """The doorbuster's product at `units` units, on flash sale from now with `limit` units per session. Returns the
    product's id."""
    from django.utils import timezone

    from catalog.models import Inventory
    from catalog.services import flash_sale_start

    first_page = list(Inventory.objects.order_by("product_id").values_list("product_id", flat=True)[:FIRST_PAGE])
    product_id = first_page[max(len(first_page) - sold_out - 1, 0)]
    Inventory.objects.filter(product_id=product_id).update(quantity=units, updated_at=timezone.now())
    flash_sale_start(product_id=product_id, starts_at=timezone.now(), max_per_session=limit)
    return product_id


if __name__ == "__main__":
    sys.exit(main())
