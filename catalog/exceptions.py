"""Catalogue errors a request can cause; shop.exceptions maps them to HTTP."""

from rest_framework import status

from shop.exceptions import DomainError


class InvalidParameter(DomainError):
    code = "invalid_parameter"


class ProductNotFound(DomainError):
    """No product has these ids: a product read, a stock count, a sale, a cart line or an order naming one.

    `product_ids` are listed in the body. A URL path's id that cannot be an id at all (catalog.params) is named
    in the detail only, as `path_id`.
    """

    status_code = status.HTTP_404_NOT_FOUND
    code = "product_not_found"

    def __init__(self, *, product_ids: list[int] | None = None, path_id: str | None = None):
        if product_ids is None:
            super().__init__(f"No product with id {path_id}.")
        else:
            names = ", ".join(str(pid) for pid in product_ids)
            super().__init__(f"No product with id {names}.", product_ids=product_ids)
        self.product_ids = product_ids or []


class InvalidQuantity(DomainError):
    code = "invalid_quantity"


class InsufficientStock(DomainError):
    status_code = 409
    code = "insufficient_stock"

    def __init__(self, *, product_ids: list[int], reason: str | None = None):
        """`reason`: None when PostgreSQL found the stock short; "sold_out" from the flash-sale gate;
        "sale_not_started" for a product whose flash sale starts later."""
        names = ", ".join(str(pid) for pid in product_ids)
        if reason == "sale_not_started":
            detail = f"The sale of product(s) {names} has not started yet."
        else:
            detail = f"Not enough stock for product(s) {names}."
        extra = {"product_ids": product_ids} if reason is None else {"product_ids": product_ids, "reason": reason}
        super().__init__(detail, **extra)
        self.product_ids = product_ids
        self.reason = reason
