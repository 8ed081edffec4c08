"""Catalogue errors a request can cause; shop.exceptions maps them to HTTP."""

from rest_framework import status

from shop.exceptions import DomainError


class InvalidParameter(DomainError):
    code = "invalid_parameter"


class ProductNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"

    def __init__(self, product_id: object):
        super().__init__(f"No product with id {product_id}.")


class InvalidQuantity(DomainError):
    code = "invalid_quantity"
