"""The oversell race on a SQLite file, run in its own process by test_concurrency.

The test run's SQLite database lives in memory with a shared cache, whose table locks fail at once instead of
waiting, so it cannot show what a SQLite file with IMMEDIATE transactions (shop.settings) does under threads.
Usage: DATABASE_URL=sqlite:///path python -m tests.checkout.sqlite_oversell → one JSON line of results.
"""

import json
import os
from collections import Counter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-a-secret")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from catalog.models import Inventory, Product  # noqa: E402
from checkout.models import Order  # noqa: E402
from tests.checkout.test_concurrency import post_checkout, run_together, tokens  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    product = Product.objects.create(sku="SQLITE-TV", name="TV", category="tv", price="499.00")
    Inventory.objects.create(product=product, quantity=20)
    body = {"product_id": product.pk, "quantity": 1}
    results = run_together([lambda token=token: post_checkout(body, token=token) for token in tokens(100)])
    print(
        json.dumps(
            {
                "statuses": Counter(str(status) for status, _ in results),
                "stock": Inventory.objects.get(product=product).quantity,
                "orders": Order.objects.count(),
            }
        )
    )


if __name__ == "__main__":
    main()
