"""Products with stock, sessions, and a snapshot of everything a checkout may write."""

import itertools
from decimal import Decimal

import pytest

from catalog.models import Inventory, Product
from checkout import ratelimit
from checkout.models import IdempotencyRecord, Order, OrderLine
from checkout.services import session_create

_skus = itertools.count(1)


@pytest.fixture(autouse=True)
def _ratelimits_off(settings):
    """Most tests send many requests from one address; the rate-limit tests switch the limiter back on."""
    settings.RATELIMIT_ENABLED = False
    ratelimit.local_counts.clear()
    yield
    ratelimit.local_counts.clear()


@pytest.fixture
def make_product():
    def make(*, price: str = "19.99", stock: int = 10, currency: str = "USD") -> Product:
        number = next(_skus)
        product = Product.objects.create(
            sku=f"SKU-{number}", name=f"Product {number}", category="tv", price=Decimal(price), currency=currency
        )
        Inventory.objects.create(product=product, quantity=stock)
        return product

    return make


@pytest.fixture
def make_token():
    def make() -> str:
        _, token = session_create()
        return token

    return make


def snapshot() -> dict:
    """Everything a checkout writes: compare before and after a refused request."""
    return {
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
        "idempotency_records": IdempotencyRecord.objects.count(),
        "stock": sorted(Inventory.objects.values_list("product_id", "quantity", "updated_at")),
    }


def stock_of(product) -> int:
    return Inventory.objects.get(product=product).quantity
