"""Products with stock, sessions, and a snapshot of everything a checkout may write."""

import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog import gate
from catalog.models import Inventory, Product
from catalog.services import flash_sale_start
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


@pytest.fixture(autouse=True)
def _no_flash_sales():
    """No product is on flash sale unless a test starts one (the `on_sale` fixture): each worker re-reads the
    gate's products once a second, and a read that finds the gate missing rebuilds it from PostgreSQL, which would
    add statements to the checkouts tests/checkout/test_statements.py counts."""
    gate._sales.product_ids = frozenset()
    gate._sales.read_at = float("inf")
    yield
    gate.sales_forget()


@pytest.fixture
def on_sale(needs_redis):
    """`on_sale(product, max_per_session=None, starts_at=None)`: a flash sale as the flash_sale command starts it,
    with the gate built; the workers of this process see it at once."""

    def start(product, *, max_per_session=None, starts_at=None):
        flash_sale_start(product_id=product.pk, starts_at=starts_at or timezone.now(), max_per_session=max_per_session)
        gate.gate_rebuild()
        return product

    gate.sales_forget()
    return start


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
