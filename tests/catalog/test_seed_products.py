from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Inventory, Product
from catalog.seeding import STOCK_RANGE, products_seed
from checkout.models import Order, OrderLine, ShopperSession

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_products", *args, stdout=out)
    return out.getvalue()


def stock_levels() -> list[tuple[str, int]]:
    return sorted(Inventory.objects.values_list("product__sku", "quantity"))


def test_seed_products_creates_one_hundred_realistic_products_with_stock():
    output = seed()

    assert Product.objects.count() == 100
    assert Inventory.objects.count() == 100
    assert Product.objects.values("category").distinct().count() == 20
    low, high = STOCK_RANGE
    assert all(low <= quantity <= high for _, quantity in stock_levels())
    product = Product.objects.get(sku="ELE-000001")
    assert product.category == "Electronics"
    assert product.price > 0
    assert product.description
    assert output.startswith("Seeded products: created 100, 0 already present, 20 categories, in ")
    assert output.count("\n") == 1


def test_seed_products_twice_changes_nothing():
    seed("--seed", "3")
    before = sorted(Product.objects.values_list("id", "sku", "name", "price", "updated_at"))
    stock_before = stock_levels()

    output = seed()

    assert sorted(Product.objects.values_list("id", "sku", "name", "price", "updated_at")) == before
    assert stock_levels() == stock_before
    assert "created 0, 100 already present" in output


def test_seed_products_with_a_seed_gives_reproducible_stock():
    seed("--seed", "42")
    first = stock_levels()

    seed("--seed", "42", "--reset")
    again = stock_levels()
    seed("--seed", "7", "--reset")
    other = stock_levels()

    assert first == again
    assert other != first


def test_seed_products_reset_starts_over():
    seed()
    Product.objects.filter(sku="ELE-000001").update(name="Changed by hand")

    output = seed("--reset")

    assert Product.objects.count() == 100
    assert Product.objects.get(sku="ELE-000001").name != "Changed by hand"
    assert "deleted 100, created 100" in output


def test_seed_products_adds_only_the_missing_products():
    seed("--products", "30")
    first_thirty = sorted(Product.objects.values_list("id", "sku"))

    output = seed("--products", "250")

    assert Product.objects.count() == 250
    assert sorted(Product.objects.filter(sku__in=[sku for _, sku in first_thirty]).values_list("id", "sku")) == (
        first_thirty
    )
    assert "created 220, 30 already present" in output


def test_seed_products_loads_in_batches(django_assert_max_num_queries, monkeypatch):
    monkeypatch.setattr("catalog.seeding.BATCH_SIZE", 500)

    # Row by row would be 4,000 INSERTs; SQLite splits a bulk INSERT at 999 bind variables, hence the margin.
    with django_assert_max_num_queries(60):
        result = products_seed(count=2_000)

    assert result.created == 2_000
    assert Inventory.objects.count() == 2_000


def test_seed_products_refuses_an_impossible_count():
    with pytest.raises(CommandError, match="between 1 and"):
        seed("--products", "0")

    assert Product.objects.count() == 0


def test_seed_products_invalidates_the_product_cache(client, django_capture_on_commit_callbacks):
    seed("--products", "5")
    with django_capture_on_commit_callbacks(execute=True):
        seed("--products", "5")
    client.get("/api/products")

    with django_capture_on_commit_callbacks(execute=True):
        seed("--products", "8")
    response = client.get("/api/products")

    assert response["X-Cache-Status"] == "MISS"
    assert len(response.json()) == 8


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_seed_products_shows_progress_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr("catalog.seeding.BATCH_SIZE", 40)
    terminal = Terminal()

    call_command("seed_products", stdout=terminal)
    piped = seed("--products", "120")

    assert "\r  40/100 products" in terminal.getvalue()
    assert "\r  100/100 products" in terminal.getvalue()
    assert "Seeded products: created 100" in terminal.getvalue().splitlines()[-1]
    assert "\r" not in piped


def test_seed_products_reset_refuses_while_orders_refer_to_products():
    seed("--products", "3")
    product = Product.objects.first()
    session = ShopperSession.objects.create(token_hash="x" * 64, expires_at="2099-01-01T00:00:00Z")
    order = Order.objects.create(session=session, total="1.00", currency="USD")
    OrderLine.objects.create(order=order, product=product, quantity=1, unit_price="1.00")

    with pytest.raises(CommandError, match="order lines refer to its products"):
        seed("--reset")

    assert Product.objects.count() == 3
    assert Inventory.objects.count() == 3


def test_if_empty_seeds_an_empty_catalogue_and_leaves_a_filled_one_alone():
    seed("--if-empty", "--products", "5")
    assert Product.objects.count() == 5

    output = seed("--if-empty", "--products", "50")

    assert Product.objects.count() == 5
    assert "nothing seeded" in output


def test_if_empty_with_reset_is_refused_with_nothing_written():
    with pytest.raises(CommandError, match="contradict"):
        seed("--if-empty", "--reset")
    assert Product.objects.count() == 0
