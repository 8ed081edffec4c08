"""Fixtures the shop-wide tests borrow from the checkout tests."""

from tests.checkout.conftest import make_product, make_token  # noqa: F401 - fixtures for tests/shop
