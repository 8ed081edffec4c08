import re

import pytest

from catalog.models import Inventory

pytestmark = pytest.mark.django_db


def rendered_names(response) -> list[str]:
    return re.findall(r'<td class="name">([^<]*)</td>', response.content.decode())


def test_storefront_renders_the_first_page_in_api_order(client, make_products):
    make_products(5)

    page = client.get("/")
    api = client.get("/api/products").json()

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert rendered_names(page) == [item["name"] for item in api]
    html = page.content.decode()
    assert f"{api[0]['price']} USD" in html
    assert 'id="health"' in html


def test_storefront_shows_low_and_out_of_stock(client, make_products):
    plenty, low, out = make_products(3, stock=120)
    Inventory.objects.filter(product=low).update(quantity=3)
    Inventory.objects.filter(product=out).update(quantity=0)

    html = client.get("/").content.decode()

    assert re.search(rf'data-product-id="{plenty.pk}">.*?120 in stock', html, re.S)
    assert re.search(rf'data-product-id="{low.pk}">.*?Only 3 left', html, re.S)
    assert re.search(rf'data-product-id="{out.pk}">.*?Out of stock', html, re.S)


def test_storefront_filters_by_category_and_search(client, make_products):
    make_products(2, category="Books", name="Paperback")
    make_products(2, category="Home", name="Lamp")

    by_category = client.get("/", {"category": "Home"})
    by_search = client.get("/", {"q": "paper"})

    assert all(name.startswith("Lamp") for name in rendered_names(by_category))
    assert len(rendered_names(by_category)) == 2
    assert all(name.startswith("Paperback") for name in rendered_names(by_search))
    assert '<option value="Home" selected>' in by_category.content.decode()


def test_storefront_is_briefly_cacheable_and_sets_no_cookie(client, make_products):
    make_products(1)

    response = client.get("/")

    assert response["Cache-Control"] == "public, s-maxage=30, max-age=0"
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_storefront_loads_nothing_from_another_host(client, make_products):
    make_products(3)

    html = client.get("/").content.decode()

    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", html)
    assert not re.search(r"https?://", html)


def test_storefront_refreshes_stock_through_the_batch_endpoint(client, make_products):
    make_products(2)

    html = client.get("/").content.decode()

    assert "/api/inventory?product_ids=" in html


def test_storefront_explains_bad_parameters(client, make_products):
    make_products(1)

    response = client.get("/", {"page": "nope"})

    assert response.status_code == 400
    assert "page must be a whole number" in response.content.decode()
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_storefront_carries_its_own_icon(client):
    # an inline icon: no /favicon.ico request (a 404 in every browser's console) and no external asset
    page = client.get("/").content.decode()

    assert '<link rel="icon" href="data:image/svg+xml,' in page
