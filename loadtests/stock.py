"""Deep stock before a run: `python -m loadtests.stock --quantity 1000000` sets every product's inventory.

A run must never inherit the last run's sold-out shelves. It runs in its own process with the server's
DATABASE_URL and writes Inventory through the ORM, which the catalogue allows operators and scripts to do.
"""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.stock", description=__doc__.splitlines()[0])
    parser.add_argument("--quantity", type=int, required=True, help="Units every product gets.")
    args = parser.parse_args(argv)
    if args.quantity < 0:
        parser.error("--quantity must be 0 or more")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from catalog.models import Inventory

    updated = Inventory.objects.update(quantity=args.quantity)
    if not updated:
        sys.stderr.write("stock reset: no inventory rows; seed the catalogue first (manage.py seed_products)\n")
        return 1
    sys.stdout.write(f"stock reset: {updated} products at {args.quantity} units\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
