import json
from decimal import Decimal

import pytest
from django.db import connection
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


@pytest.fixture
def not_dedicated(needs_postgres, db):
    """The test database without the load-test marker (the comment is transactional: it comes back after)."""
    stock.database_mark_dedicated(dedicated=False)
    assert not stock.database_is_dedicated()


@pytest.fixture
def dedicated(needs_postgres, db):
    stock.database_mark_dedicated(dedicated=True)


def test_stock_main_sets_deep_stock_and_sells_out_the_last_of_the_first_page(dedicated, capsys):
    ids = make_products(4)
    before = timezone.now()

    assert stock.main(["--quantity", "1000000", "--sold-out", "1"]) == 0

    quantities = dict(Inventory.objects.values_list("product_id", "quantity"))
    assert quantities == {ids[0]: 1_000_000, ids[1]: 1_000_000, ids[2]: 1_000_000, ids[3]: 0}
    assert Inventory.objects.filter(updated_at__lt=before).count() == 0
    out = capsys.readouterr().out
    assert f"sold out: [{ids[3]}]" in out
    assert f"stock reset in {stock.database_label()}" in out


def test_stock_main_refuses_a_database_not_marked_dedicated_names_it_and_writes_nothing(not_dedicated, capsys):
    make_products(3)

    assert stock.main(["--quantity", "1000000", "--sold-out", "1"]) == stock.REFUSED

    error = capsys.readouterr().err
    assert "stock reset refused" in error and stock.database_label() in error
    assert connection.settings_dict["NAME"] in error
    assert set(Inventory.objects.values_list("quantity", flat=True)) == {3}


def test_stock_main_resets_a_database_not_marked_dedicated_with_yes(not_dedicated):
    make_products(2)

    assert stock.main(["--quantity", "50", "--yes"]) == 0

    assert set(Inventory.objects.values_list("quantity", flat=True)) == {50}


def test_stock_status_and_mark_dedicated(not_dedicated, capsys):
    make_products(2)

    assert stock.main(["--status"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert stock.main(["--mark-dedicated", "--status"]) == 0
    after = json.loads(capsys.readouterr().out.splitlines()[-1])

    assert before == {"database": stock.database_label(), "dedicated": False, "products": 2}
    assert after == {**before, "dedicated": True}


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


def test_stock_main_without_a_catalogue_fails_and_writes_nothing(dedicated, capsys):
    assert stock.main(["--quantity", "10"]) == 1

    assert "seed the catalogue first" in capsys.readouterr().err
    assert not Inventory.objects.exists()


def test_stock_main_refuses_a_negative_quantity():
    with pytest.raises(SystemExit):
        stock.main(["--quantity", "-1"])
