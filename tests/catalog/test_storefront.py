import re
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Inventory, Product, StockHold
from checkout.models import ShopperSession

pytestmark = pytest.mark.django_db

PAGES = ["/", "/cart", "/orders/1"]


def rendered_names(response) -> list[str]:
    return re.findall(r'<a class="name" href="/products/\d+">([^<]*)</a>', response.content.decode())


def hold(product: Product, units: int) -> None:
    session = ShopperSession.objects.create(
        token_hash=f"{product.pk:064d}", expires_at=timezone.now() + timedelta(hours=1)
    )
    StockHold.objects.create(
        session=session,
        product=product,
        units=units,
        client_ip="127.0.0.1",
        expires_at=timezone.now() + timedelta(minutes=5),
    )


def test_storefront_renders_the_first_page_in_api_order(client, make_products):
    make_products(5)

    page = client.get("/")
    api = client.get("/api/products").json()

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert rendered_names(page) == [item["name"] for item in api]
    html = page.content.decode()
    assert f"{api[0]['price']} USD" in html
    assert f'href="/products/{api[0]["id"]}"' in html


def test_storefront_shows_no_operations_badge(client, make_products):
    make_products(1)

    html = client.get("/").content.decode()

    assert 'id="health"' not in html
    assert "All systems normal" not in html
    assert "/health/ready" not in html


def test_storefront_shows_low_stock_and_sold_out_from_available_units(client, make_products):
    plenty, low, out, held = make_products(4, stock=120)
    Inventory.objects.filter(product=low).update(quantity=3)
    Inventory.objects.filter(product=out).update(quantity=0)
    hold(held, 115)

    html = client.get("/").content.decode()

    assert re.search(rf'data-product-id="{plenty.pk}">.*?120 in stock', html, re.S)
    assert re.search(rf'data-product-id="{low.pk}">.*?Only 3 left', html, re.S)
    assert re.search(rf'data-product-id="{out.pk}">.*?Sold out', html, re.S)
    assert re.search(rf'data-product-id="{held.pk}">.*?Only 5 left', html, re.S)


def test_storefront_filters_by_category_and_search(client, make_products):
    make_products(2, category="Books", name="Paperback")
    make_products(2, category="Home", name="Lamp")

    by_category = client.get("/", {"category": "Home"})
    by_search = client.get("/", {"q": "paper"})

    assert all(name.startswith("Lamp") for name in rendered_names(by_category))
    assert len(rendered_names(by_category)) == 2
    assert all(name.startswith("Paperback") for name in rendered_names(by_search))
    assert '<option value="Home" selected>' in by_category.content.decode()


@pytest.mark.parametrize("path", [*PAGES, "/products/{id}"])
def test_storefront_pages_are_briefly_cacheable_and_set_no_cookie(client, make_products, path):
    (product,) = make_products(1)

    response = client.get(path.format(id=product.pk))

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, s-maxage=30, max-age=0"
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


@pytest.mark.parametrize("path", [*PAGES, "/products/{id}"])
def test_storefront_pages_load_nothing_from_another_host_and_fit_a_phone(client, make_products, path):
    (product,) = make_products(1)

    html = client.get(path.format(id=product.pk)).content.decode()

    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", html)
    assert not re.search(r"https?://", html)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<link rel="icon" href="data:image/svg+xml,' in html


def test_storefront_refreshes_available_stock_through_the_batch_endpoint(client, make_products):
    make_products(2)

    html = client.get("/").content.decode()

    assert "/api/inventory?product_ids=" in html
    assert "row.available" in html


def test_storefront_explains_bad_parameters(client, make_products):
    make_products(1)

    response = client.get("/", {"page": "nope"})

    assert response.status_code == 400
    assert "page must be a whole number" in response.content.decode()
    assert response["Cache-Control"] == "no-store"


def test_product_page_offers_add_to_cart_with_the_hold_time(client, make_products, settings):
    settings.CART_HOLD_SECONDS = 900
    (product,) = make_products(1, stock=4)

    html = client.get(f"/products/{product.pk}").content.decode()

    assert f'<h2 id="product-name">{product.name}</h2>' in html
    assert f"{product.price} USD" in html
    assert product.description in html
    assert re.search(r'id="add-to-cart" type="submit">Add to cart</button>', html)
    assert "Only 4 left" in html
    assert "holds the units for you for 15 minutes" in html
    assert '"/api/cart/items/" + productId' in html
    assert 'id="buy-now"' not in html


def test_product_page_of_a_sold_out_product_cannot_be_bought(client, make_products):
    (product,) = make_products(1, stock=0)

    html = client.get(f"/products/{product.pk}").content.decode()

    assert re.search(r'id="stock" class="stock out" data-available="0">Sold out<', html)
    assert re.search(r'id="add-to-cart" type="submit" disabled>Sold out</button>', html)


def test_product_page_of_a_flash_sale_offers_buy_now_with_an_idempotency_key(client, make_products):
    (product,) = make_products(1, stock=50)
    Product.objects.filter(pk=product.pk).update(
        sale_starts_at=timezone.now() - timedelta(minutes=1), max_per_session=2
    )

    html = client.get(f"/products/{product.pk}").content.decode()

    assert re.search(r'id="buy-now" type="submit">Buy now</button>', html)
    assert 'id="add-to-cart"' not in html
    assert "Flash sale" in html
    assert "At most 2 per shopper." in html
    assert 'max="2"' in html
    assert '"/api/checkout", {body: body, key: attempt.key}' in html


@pytest.mark.parametrize("path", ["/products/999999", "/products/9223372036854775808", "/products/nope", "/orders/x"])
def test_unknown_pages_are_404(client, make_products, path):
    make_products(1)

    assert client.get(path).status_code == 404


def test_cart_and_order_pages_read_the_api_with_the_session_token(client):
    cart = client.get("/cart").content.decode()
    order = client.get("/orders/42").content.decode()

    assert '"/api/cart/checkout", {key: attempt}' in cart
    assert 'data-order-id="42"' in order
    assert '"/api/orders/" + orderId' in order
    assert 'headers["X-Session-Token"] = options.token' in cart
    assert 'headers["Idempotency-Key"] = options.key' in cart


def test_every_refusal_has_a_sentence_for_the_shopper(client):
    script = client.get("/cart").content.decode()

    for answer in [
        "status === 0",
        "status === 429",
        "status === 503",
        '"sold_out"',
        '"sale_not_started"',
        '"insufficient_stock"',
        '"limit_exceeded"',
        '"hold_limit_exceeded"',
        '"hold_not_allowed"',
        '"cart_empty"',
        '"request_in_progress"',
        '"session_invalid"',
    ]:
        assert answer in script
    assert 'response.headers.get("Retry-After")' in script
