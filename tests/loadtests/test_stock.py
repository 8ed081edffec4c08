from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Inventory, Product
from loadtests import stock


def make_products(count: int) -> list[int]:
    ids = []
    for number in range(count):
        product = Product.objects.create(
            sku=f"LOAD-{number:03d}", name=f"Product {number}", category="tv", price=Decimal("99.00")
        )
        Inventory.objects.create(product=product, quantity=3)
        ids.append(product.id)
    return ids


@pytest.mark.django_db
def test_stock_main_sets_deep_stock_and_sells_out_the_last_of_the_first_page(capsys):
    ids = make_products(4)
    before = timezone.now()

    assert stock.main(["--quantity", "1000000", "--sold-out", "1"]) == 0

    quantities = dict(Inventory.objects.values_list("product_id", "quantity"))
    assert quantities == {ids[0]: 1_000_000, ids[1]: 1_000_000, ids[2]: 1_000_000, ids[3]: 0}
    assert Inventory.objects.filter(updated_at__lt=before).count() == 0
    assert f"sold out: [{ids[3]}]" in capsys.readouterr().out


@pytest.mark.django_db
def test_stock_reset_takes_sold_out_products_from_the_first_page_only(monkeypatch):
    ids = make_products(5)
    monkeypatch.setattr(stock, "FIRST_PAGE", 3)

    emptied, updated = stock.stock_reset(quantity=50, sold_out=2)

    assert (emptied, updated) == (ids[1:3], 5)
    assert dict(Inventory.objects.values_list("product_id", "quantity")) == {
        ids[0]: 50,
        ids[1]: 0,
        ids[2]: 0,
        ids[3]: 50,
        ids[4]: 50,
    }


@pytest.mark.django_db
def test_stock_main_without_a_catalogue_fails_and_writes_nothing(capsys):
    assert stock.main(["--quantity", "10"]) == 1

    assert "seed the catalogue first" in capsys.readouterr().err
    assert not Inventory.objects.exists()


def test_stock_main_refuses_a_negative_quantity():
    with pytest.raises(SystemExit):
        stock.main(["--quantity", "-1"])
