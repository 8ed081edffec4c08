"""Catalogue fixtures: products with stock, a clean product cache, and Redis stand-ins that fail on loopback."""

import socket
from decimal import Decimal

import pytest

from catalog import cache
from catalog.models import Inventory, Product

CATEGORIES = ["Books", "Garden", "Toys"]


@pytest.fixture(autouse=True)
def _fresh_product_cache(monkeypatch):
    """The in-process store outlives a test; Redis is flushed by the shared fixtures."""
    monkeypatch.setattr(cache, "_local_store", cache.LocalStore())


@pytest.fixture
def make_products():
    def make(count: int, *, category: str | None = None, stock: int = 100, name: str = "Item") -> list[Product]:
        start = Product.objects.count()
        products = Product.objects.bulk_create(
            Product(
                sku=f"T-{start + number:06d}",
                name=f"{name} {start + number}",
                category=category or CATEGORIES[(start + number) % len(CATEGORIES)],
                price=Decimal("10.00") + number,
                description=f"About item {start + number}.",
            )
            for number in range(1, count + 1)
        )
        Inventory.objects.bulk_create(Inventory(product=product, quantity=stock) for product in products)
        return sorted(products, key=lambda product: product.pk)

    return make


def product_queries(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if '"catalog_product"' in query["sql"]]


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_port():
    """A loopback listener that never accepts or answers: connects succeed, reads time out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


@pytest.fixture
def full_backlog_port():
    """A loopback listener whose accept queue is full: the kernel drops new SYNs, so connects hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.2)
    try:
        probe.connect(("127.0.0.1", port))
        hangs = False
    except TimeoutError:
        hangs = True
    finally:
        probe.close()
    assert hangs, "the accept queue did not fill: connects to the stand-in do not hang on this kernel"
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture(params=["local", "redis"])
def cache_backend(request, settings):
    """Run a cache test on the in-process store (no REDIS_URL) and on the real Redis."""
    from shop.redis import redis_client

    if request.param == "redis":
        yield request.getfixturevalue("needs_redis")
        return
    settings.REDIS_URL = ""
    redis_client.cache_clear()
    yield None
    redis_client.cache_clear()


@pytest.fixture
def redis_at(settings):
    """Point the shop's Redis client at a loopback port for one test."""
    from shop.redis import breaker, redis_client

    def point(port: int) -> None:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        redis_client.cache_clear()
        breaker.reset()

    yield point
    redis_client.cache_clear()
    breaker.reset()
